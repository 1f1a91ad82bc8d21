//! Synthetic math tasks and the small built-in base model
