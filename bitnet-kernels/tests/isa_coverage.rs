//! Proves the other tests really ran every path this CPU has: detection must
//! agree with an independent reading of the CPU, and `BITNET_REQUIRE_ISA`
//! (set by CI, e.g. `avx2,avx512` or `neon,neon-dotprod`) names paths whose
//! absence is a failure rather than a silent fallback to scalar.

use bitnet_kernels::{Dispatch, Error, Isa};

#[test]
fn required_paths_are_supported() {
    let Ok(list) = std::env::var("BITNET_REQUIRE_ISA") else {
        return;
    };
    for name in list.split(',').filter(|s| !s.trim().is_empty()) {
        let isa = Isa::from_name(name).unwrap_or_else(|_| panic!("unknown ISA {name:?}"));
        assert!(
            isa.is_supported(),
            "{isa} is required but not detected: its kernels were not tested"
        );
        assert_eq!(Dispatch::for_isa(isa).unwrap().isa(), isa);
    }
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[test]
fn detection_agrees_with_proc_cpuinfo() {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    let flags: Vec<&str> = info
        .lines()
        .find(|l| l.starts_with("flags"))
        .unwrap()
        .split_whitespace()
        .collect();
    let has = |names: &[&str]| names.iter().all(|n| flags.contains(n));
    let avx2 = has(&["avx2", "fma", "f16c"]);
    let avx512 = avx2
        && has(&[
            "avx512f",
            "avx512bw",
            "avx512vl",
            "avx512_vnni",
            "avx512vbmi",
        ]);
    assert_eq!(Isa::Avx2.is_supported(), avx2);
    assert_eq!(Isa::Avx512.is_supported(), avx512);
    assert!(!Isa::Neon.is_supported());
}

#[test]
fn forcing_an_unsupported_or_unknown_path_is_an_error() {
    for isa in Isa::ALL {
        match Dispatch::for_isa(isa) {
            Ok(d) => assert!(isa.is_supported() && d.isa() == isa),
            Err(e) => assert_eq!(e, Error::IsaUnavailable { isa }),
        }
        assert_eq!(Isa::from_name(isa.name()), Ok(isa));
    }
    assert_eq!(Isa::from_name("AVX512"), Ok(Isa::Avx512));
    assert_eq!(Isa::from_name("sse9"), Err(Error::UnknownIsa));
    assert!(Isa::best().is_supported());
    assert_eq!(Dispatch::best().isa(), Isa::best());
    let d = Dispatch::detect();
    assert!(d.describe().to_string().starts_with(d.isa().name()));
}
