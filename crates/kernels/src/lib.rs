//! Fused tensor ops with forward and backward.
