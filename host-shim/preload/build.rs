//! Compiles `src/execl.c`: the variadic exec calls (see `src/exec.rs`).

fn main() {
    println!("cargo:rerun-if-changed=src/execl.c");
    cc::Build::new()
        .file("src/execl.c")
        .flag_if_supported("-Wall")
        .flag_if_supported("-Wextra")
        .compile("toe_preload_execl");
}
