//! Math answer checker. See the crate README section in the project README.
