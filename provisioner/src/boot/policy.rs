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
    /// UEFI HTTP boot clients' URL; None: HTTP boot is off.
    http_boot_url: Option<String>,
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

    /// The site's UKI, except for nodes the store sends to their local disk: with no iPXE
    /// script to say "boot your disk", a provisioned node is simply not given a boot file,
    /// and its firmware goes on to the next boot entry. Refusals were decided by `decide`.
    fn http_boot_url(&self, client: &PxeClient) -> Option<String> {
        let url = self.http_boot_url.as_ref()?;
        let identity = Identity::new(None, client.uuid.as_deref(), &[client.mac.as_str()]);
        match self.store.peek_boot_plan(&identity) {
            Ok(BootPlan::LocalDisk { node_id }) => {
                tracing::info!(mac = %client.mac, %node_id, "UEFI HTTP boot: no boot file, the node is provisioned and boots its local disk");
                None
            }
            Ok(_) => Some(url.clone()),
            Err(error) => {
                self.failed(client, error);
                None
            }
        }
    }
}

impl StorePolicy {
    /// Answers PXE requests from `store`; iPXE clients that may boot are sent to `script_url`.
    pub fn new(store: Arc<Store>, script_url: String) -> Self {
        Self {
            store,
            script_url,
            http_boot_url: None,
        }
    }

    /// Answers UEFI HTTP boot clients the store would boot with `url` (the site's UKI).
    #[must_use]
    pub fn with_http_boot_url(mut self, url: Option<String>) -> Self {
        self.http_boot_url = url;
        self
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
