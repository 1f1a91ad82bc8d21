//! One module per subcommand.
pub mod bench;
pub mod eval;
pub mod verify;
pub mod score;
pub mod select;
pub mod train;
pub mod lab;
pub mod demo;
