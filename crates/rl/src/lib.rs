//! RLVR math: advantages, losses, optimizer, trainer
