//! Build script. Without the `doca` feature it does nothing (the default
//! build needs no SDK). With it, it finds the NVIDIA DOCA SDK through
//! pkg-config and generates bindings with bindgen (see docs/doca.md).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CARGO_FEATURE_DOCA");
    // The build script is compiled with the package's features, so the cfg
    // and the variable agree; both are checked to be explicit.
    #[cfg(feature = "doca")]
    if std::env::var_os("CARGO_FEATURE_DOCA").is_some() {
        doca::generate();
    }
}

#[cfg(feature = "doca")]
mod doca {
    use std::path::PathBuf;

    const PACKAGES: [&str; 3] = ["doca-common", "doca-dma", "doca-comch"];
    const HEADERS: [&str; 9] = [
        "doca_dev.h",
        "doca_mmap.h",
        "doca_buf.h",
        "doca_buf_inventory.h",
        "doca_ctx.h",
        "doca_pe.h",
        "doca_dma.h",
        "doca_comch.h",
        "doca_error.h",
    ];

    pub fn generate() {
        println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
        let mut include_paths: Vec<PathBuf> = Vec::new();
        let mut defines: Vec<String> = Vec::new();
        for pkg in PACKAGES {
            match pkg_config::Config::new().probe(pkg) {
                Ok(lib) => {
                    include_paths.extend(lib.include_paths);
                    defines.extend(lib.defines.into_iter().map(|(k, v)| match v {
                        Some(v) => format!("-D{k}={v}"),
                        None => format!("-D{k}"),
                    }));
                }
                Err(e) => panic!(
                    "feature `doca` needs the NVIDIA DOCA SDK: pkg-config could not find \
                     {pkg} (looked for {}; DOCA installs its .pc files under \
                     /opt/mellanox/doca/lib/<arch>-linux-gnu/pkgconfig, add that to \
                     PKG_CONFIG_PATH if it is not linked into the system path). Install the \
                     DOCA SDK or build without --features doca.\npkg-config said: {e}",
                    PACKAGES.join(", ")
                ),
            }
        }
        include_paths.sort();
        include_paths.dedup();
        defines.sort();
        defines.dedup();

        let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
        let wrapper = out.join("doca_wrapper.h");
        let body: String = HEADERS
            .iter()
            .map(|h| format!("#include <{h}>\n"))
            .collect();
        std::fs::write(&wrapper, body).expect("write doca_wrapper.h");

        let mut builder = bindgen::Builder::default()
            .header(wrapper.to_string_lossy().into_owned())
            // Comch and a few mmap calls are DOCA_EXPERIMENTAL: without this
            // they are declared deprecated.
            .clang_arg("-DDOCA_ALLOW_EXPERIMENTAL_API")
            .allowlist_function("doca_.*")
            .allowlist_type("doca_.*")
            .allowlist_var("DOCA_.*")
            .default_enum_style(bindgen::EnumVariation::Consts)
            .prepend_enum_name(false)
            .layout_tests(false)
            .generate_comments(false);
        for p in &include_paths {
            builder = builder.clang_arg(format!("-I{}", p.display()));
        }
        builder = builder.clang_args(&defines);
        let bindings = builder
            .generate()
            .unwrap_or_else(|e| panic!("bindgen failed on the DOCA headers: {e}"));
        bindings
            .write_to_file(out.join("doca_sys.rs"))
            .expect("write doca_sys.rs");
    }
}
