//! One module per subcommand.
pub mod bench;
pub mod demo;
pub mod eval;
pub mod lab;
pub mod score;
pub mod select;
pub mod train;
pub mod verify;
