//! DHCP's admission control on the store: who gets boot information at all.

use std::sync::Arc;

use bootkit_dhcp::{BootDecision, BootPolicy, PxeClient};

use crate::store::{BootPlan, Identity, Store, StoreError};

/// Nodes the store would boot (install or local disk) get the iPXE script URL: the script
/// decides which. Refused nodes, and any store failure, get no answer (but see
/// `StorePolicy::serial_may_match`).
pub struct StorePolicy {
    store: Arc<Store>,
    script_url: String,
}

impl BootPolicy for StorePolicy {
    fn decide(&self, client: &PxeClient) -> BootDecision {
        // DHCP knows no serial: only the script request carries it.
        let identity = Identity::new(None, client.uuid.as_deref(), &[client.mac.as_str()]);
        match self.store.peek_boot_plan(&identity) {
            Ok(BootPlan::Install { .. } | BootPlan::LocalDisk { .. }) => BootDecision::Boot {
                script_url: self.script_url.clone(),
            },
            Ok(BootPlan::Refused { reason }) => match self.serial_may_match() {
                Ok(true) => BootDecision::Boot {
                    script_url: self.script_url.clone(),
                },
                Ok(false) => BootDecision::Ignore { reason },
                Err(error) => self.failed(client, error),
            },
            Err(error) => self.failed(client, error),
        }
    }
}

impl StorePolicy {
    /// Answers PXE requests from `store`; iPXE clients that may boot are sent to `script_url`.
    pub fn new(store: Arc<Store>, script_url: String) -> Self {
        Self { store, script_url }
    }

    /// DHCP requests carry no serial number, so a node registered by serial alone looks
    /// unregistered here; while such registrations exist, refused nodes still get the script,
    /// whose request carries the serial and refuses for good.
    fn serial_may_match(&self) -> Result<bool, StoreError> {
        self.store.any_registration_by_serial()
    }

    fn failed(&self, client: &PxeClient, error: StoreError) -> BootDecision {
        tracing::error!(mac = %client.mac, "deciding whether to boot failed: {error}");
        BootDecision::Ignore {
            reason: format!("the provisioner's store failed: {error}"),
        }
    }
}
