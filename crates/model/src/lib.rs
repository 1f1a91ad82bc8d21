//! Qwen2/Llama decoder on candle: loading, differentiable log-probs, KV-cache sampling, HF-format saving
