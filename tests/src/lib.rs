//! Test support: the private pcscd + vpcd rig.
