#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sidebus::fuzzing::cesql(data);
});
