//! `onboardingmgr.v1` on the store: device discovery's OnboardNodeStream (and CreateNodes).
//! PLACEHOLDER: being written.
