//! PLACEHOLDER: the provisioning stack (registry, provisioner, action images) the PXE tests and the demo share is being written (H7).
