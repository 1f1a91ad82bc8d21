//! `isa::from_env`: how `ONESHOT_ISA` (and the older `ONESHOT_AMX=0`) are read, and the error
//! for a value that is not a level. One test, so nothing else in this process reads the
//! environment while it changes.
use oneshot_kernels::isa::{self, Isa};

#[test]
fn levels_parse_and_unknown_values_are_clear_errors() {
    std::env::remove_var("ONESHOT_AMX");
    std::env::remove_var("ONESHOT_ISA");
    assert_eq!(isa::from_env(), Ok(None));
    for (value, want) in [
        ("auto", None),
        ("portable", Some(Isa::Portable)),
        ("avx2", Some(Isa::Avx2)),
        ("avx512", Some(Isa::Avx512)),
        ("avx512bf16", Some(Isa::Avx512Bf16)),
        ("amx", Some(Isa::Amx)),
        ("neon", Some(Isa::Neon)),
    ] {
        std::env::set_var("ONESHOT_ISA", value);
        assert_eq!(isa::from_env(), Ok(want), "{value}");
    }
    std::env::set_var("ONESHOT_ISA", "portabel");
    let err = isa::from_env().unwrap_err();
    assert!(
        err.contains("ONESHOT_ISA") && err.contains("portabel") && err.contains("avx512bf16"),
        "{err}"
    );
    std::env::remove_var("ONESHOT_ISA");
    std::env::set_var("ONESHOT_AMX", "0");
    assert_eq!(isa::from_env(), Ok(Some(Isa::Avx512Bf16)));
    std::env::set_var("ONESHOT_ISA", "avx2");
    assert_eq!(isa::from_env(), Ok(Some(Isa::Avx2)), "ONESHOT_ISA wins");
}
