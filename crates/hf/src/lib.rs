//! Hugging Face formats at the edge.
