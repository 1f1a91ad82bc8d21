//! One module per subcommand.
pub mod bench;
pub mod verify;
pub mod score;
pub mod select;
pub mod lab;
