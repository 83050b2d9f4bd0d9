//! The C header against the Rust entry points, the C test program's
//! compilation, and the boundary checks that need no service.

use super::*;
use std::any::type_name;
use std::path::Path;
use std::process::Command;

const HEADER: &str = include_str!("../../include/toe.h");

/// Signatures of the exported functions as the compiler sees them (each
/// coercion fails to compile if the function's type differs).
fn rust_signatures() -> Vec<(&'static str, &'static str)> {
    macro_rules! sig {
        ($name:ident : $t:ty) => {{
            let _: $t = $name;
            (stringify!($name), type_name::<$t>())
        }};
    }
    use libc::{in_addr, sockaddr_in, ssize_t};
    vec![
        sig!(toe_open: unsafe extern "C" fn(*const c_char) -> *mut ToeC),
        sig!(toe_local_ip: unsafe extern "C" fn(*mut ToeC, *mut in_addr) -> c_int),
        sig!(toe_close: unsafe extern "C" fn(*mut ToeC)),
        sig!(toe_listen: unsafe extern "C" fn(*mut ToeC, u16, c_int) -> c_int),
        sig!(toe_accept: unsafe extern "C" fn(*mut ToeC, c_int, *mut sockaddr_in) -> c_int),
        sig!(toe_connect: unsafe extern "C" fn(*mut ToeC, *const sockaddr_in) -> c_int),
        sig!(toe_send: unsafe extern "C" fn(*mut ToeC, c_int, *const c_void, usize) -> ssize_t),
        sig!(toe_recv: unsafe extern "C" fn(*mut ToeC, c_int, *mut c_void, usize) -> ssize_t),
        sig!(toe_shutdown: unsafe extern "C" fn(*mut ToeC, c_int, c_int) -> c_int),
        sig!(toe_close_conn: unsafe extern "C" fn(*mut ToeC, c_int) -> c_int),
        sig!(toe_set_nonblocking: unsafe extern "C" fn(*mut ToeC, c_int, c_int) -> c_int),
        sig!(toe_set_congestion_control: unsafe extern "C" fn(*mut ToeC, c_int, *const c_char) -> c_int),
        sig!(toe_set_max_pacing_rate: unsafe extern "C" fn(*mut ToeC, c_int, u64) -> c_int),
        sig!(toe_set_nodelay: unsafe extern "C" fn(*mut ToeC, c_int, c_int) -> c_int),
        sig!(toe_set_cork: unsafe extern "C" fn(*mut ToeC, c_int, c_int) -> c_int),
        sig!(toe_set_keepalive: unsafe extern "C" fn(*mut ToeC, c_int, c_int, c_int, c_int) -> c_int),
        sig!(toe_poll: unsafe extern "C" fn(*mut ToeC, c_int) -> c_int),
        sig!(toe_submit: unsafe extern "C" fn(*mut ToeC, *mut ToeOp, usize) -> c_int),
    ]
}

/// `a::b::C` -> `C` in a type name (paths differ between libc versions).
fn strip_paths(s: &str) -> String {
    let mut out = String::new();
    let mut word = String::new();
    for ch in s.chars().chain(std::iter::once(' ')) {
        if ch.is_alphanumeric() || ch == '_' || ch == ':' {
            word.push(ch);
        } else {
            out.push_str(word.rsplit("::").next().unwrap_or(""));
            word.clear();
            out.push(ch);
        }
    }
    out.trim_end().to_string()
}

/// The Rust type of a C type of the header.
fn rust_type(c: &str) -> String {
    let t = match c {
        "toe_t *" => "*mut ToeC".to_string(),
        "const char *" => format!("*const {}", type_name::<c_char>()),
        "int" => type_name::<c_int>().to_string(),
        "uint16_t" => "u16".into(),
        "uint64_t" => "u64".into(),
        "size_t" => "usize".into(),
        "ssize_t" => type_name::<libc::ssize_t>().to_string(),
        "const void *" => "*const c_void".into(),
        "void *" => "*mut c_void".into(),
        "struct sockaddr_in *" => "*mut sockaddr_in".into(),
        "const struct sockaddr_in *" => "*const sockaddr_in".into(),
        "struct in_addr *" => "*mut in_addr".into(),
        "struct toe_op *" => "*mut ToeOp".into(),
        other => panic!("C type {other:?} has no mapping in this test"),
    };
    strip_paths(&t)
}

/// Splits `const char *name` into ("const char *", "name").
fn split_decl(decl: &str) -> (String, String) {
    let spaced = decl.replace('*', " * ");
    let mut toks: Vec<&str> = spaced.split_whitespace().collect();
    let name = toks.pop().expect("declaration with a name").to_string();
    let mut ty = toks.join(" ");
    ty = ty.replace("* *", "**");
    if ty.ends_with(" *") {
        ty = format!("{} *", ty.trim_end_matches(" *").trim_end());
    }
    (ty, name)
}

/// The header's prototypes as (name, Rust signature derived from C).
fn header_signatures() -> Vec<(String, String)> {
    let mut text = String::new();
    let mut rest = HEADER;
    while let Some(i) = rest.find("/*") {
        text.push_str(&rest[..i]);
        let j = rest[i..].find("*/").expect("closed comment");
        rest = &rest[i + j + 2..];
    }
    text.push_str(rest);
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ");
    let mut out = Vec::new();
    for stmt in code.split(';') {
        let stmt = stmt.trim();
        if stmt.contains("typedef") || !stmt.contains('(') {
            continue;
        }
        let open = stmt.find('(').unwrap();
        let close = stmt.rfind(')').expect("closing parenthesis");
        let (ret, name) = split_decl(&stmt[..open]);
        let params: Vec<String> = stmt[open + 1..close]
            .split(',')
            .map(|p| rust_type(&split_decl(p).0))
            .collect();
        let mut sig = format!("unsafe extern \"C\" fn({})", params.join(", "));
        if ret != "void" {
            sig.push_str(&format!(" -> {}", rust_type(&ret)));
        }
        out.push((name, sig));
    }
    out
}

#[test]
fn header_matches_the_rust_signatures() {
    let header = header_signatures();
    let rust: Vec<(String, String)> = rust_signatures()
        .into_iter()
        .map(|(n, t)| (n.to_string(), strip_paths(t)))
        .collect();
    assert_eq!(
        header.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        rust.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        "functions of toe.h vs capi.rs (same order)"
    );
    for ((name, h), (_, r)) in header.iter().zip(&rust) {
        assert_eq!(h, r, "signature of {name}: toe.h vs capi.rs");
    }
}

#[test]
fn every_exported_function_is_in_the_header() {
    let src = include_str!("../capi.rs");
    let exported = src
        .split("#[no_mangle]")
        .skip(1)
        .map(|s| {
            let s = s.split("fn ").nth(1).expect("fn after no_mangle");
            s[..s.find('(').unwrap()].trim().to_string()
        })
        .collect::<Vec<_>>();
    let declared: Vec<String> = header_signatures().into_iter().map(|(n, _)| n).collect();
    assert_eq!(exported, declared);
}

fn find_compiler(candidates: &[&'static str]) -> Option<&'static str> {
    candidates
        .iter()
        .copied()
        .find(|c| Command::new(c).arg("--version").output().is_ok())
}

/// Compiles `source` to an object file (`-c`) with warnings as errors.
/// Without a compiler it fails under `FLEXTOE_REQUIRE_ALL` (scripts/test.sh
/// as root installs them) and is otherwise skipped, with the reason in
/// `FLEXTOE_SKIP_LOG` for test.sh's summary (as `flextoe_tests::skip`).
fn compile_only(compilers: &[&'static str], std: &str, source: &Path, extra: &[&str]) {
    let Some(cc) = find_compiler(compilers) else {
        let why = format!(
            "C API header check ({}): no compiler among {compilers:?} found",
            source.display()
        );
        if std::env::var_os("FLEXTOE_REQUIRE_ALL").is_some_and(|v| v != "0") {
            panic!("this test must run here (FLEXTOE_REQUIRE_ALL): {why}");
        }
        println!("SKIP: {why}");
        if let Some(log) = std::env::var_os("FLEXTOE_SKIP_LOG") {
            use std::io::Write;
            let _ = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .and_then(|mut f| f.write_all(format!("{why}\n").as_bytes()));
        }
        return;
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let obj = std::env::temp_dir().join(format!(
        "toe-c-{}-{}-{std}.o",
        std::process::id(),
        source.file_stem().unwrap().to_string_lossy()
    ));
    let out = Command::new(cc)
        .arg(format!("-std={std}"))
        .args(["-Wall", "-Wextra", "-Werror", "-pedantic", "-c"])
        .args(extra)
        .arg("-I")
        .arg(dir.join("include"))
        .arg(source)
        .arg("-o")
        .arg(&obj)
        .output()
        .expect("run the compiler");
    let _ = std::fs::remove_file(&obj);
    assert!(
        out.status.success(),
        "{cc} failed on {}:\n{}",
        source.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

const CC: &[&str] = &["cc", "gcc", "clang"];
const CXX: &[&str] = &["c++", "g++", "clang++"];

#[test]
fn c_echo_program_compiles() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    compile_only(CC, "c11", &dir.join("tests/c/echo.c"), &["-pthread"]);
}

#[test]
fn header_alone_compiles_as_c_and_cxx() {
    let tmp = std::env::temp_dir();
    let body = "#include \"toe.h\"\nint toe_h_included;\n";
    for (compilers, std, ext) in [(CC, "c99", "c"), (CXX, "c++11", "cc")] {
        let src = tmp.join(format!("toe-h-{}.{ext}", std::process::id()));
        std::fs::write(&src, body).unwrap();
        compile_only(compilers, std, &src, &[]);
        let _ = std::fs::remove_file(&src);
    }
}

#[test]
fn sockaddr_round_trip() {
    let a: SocketAddrV4 = "198.18.0.2:8080".parse().unwrap();
    let s = to_sockaddr_in(a);
    assert_eq!(s.sin_port, 8080u16.to_be());
    assert_eq!(s.sin_addr.s_addr.to_ne_bytes(), [198, 18, 0, 2]);
    assert_eq!(from_sockaddr_in(&s), Ok(a));
    let mut bad = s;
    bad.sin_family = libc::AF_INET6 as libc::sa_family_t;
    assert_eq!(from_sockaddr_in(&bad), Err(-libc::EAFNOSUPPORT));
}

#[test]
fn null_and_bad_arguments_are_errors() {
    let null = std::ptr::null_mut();
    let mut buf = [0u8; 4];
    // SAFETY: NULL toe_t pointers are allowed by every entry point.
    unsafe {
        toe_close(null);
        assert_eq!(toe_listen(null, 80, 0), -libc::EINVAL);
        assert_eq!(toe_accept(null, 0, std::ptr::null_mut()), -libc::EINVAL);
        assert_eq!(toe_connect(null, std::ptr::null()), -libc::EINVAL);
        assert_eq!(
            toe_send(null, 0, buf.as_ptr().cast(), 4),
            -libc::EINVAL as isize
        );
        assert_eq!(
            toe_recv(null, 0, buf.as_mut_ptr().cast(), 4),
            -libc::EINVAL as isize
        );
        assert_eq!(toe_shutdown(null, 0, libc::SHUT_WR), -libc::EINVAL);
        assert_eq!(toe_close_conn(null, 0), -libc::EINVAL);
        assert_eq!(toe_set_nonblocking(null, 0, 1), -libc::EINVAL);
        assert_eq!(
            toe_set_congestion_control(null, 0, c"dctcp".as_ptr()),
            -libc::EINVAL
        );
        assert_eq!(toe_set_max_pacing_rate(null, 0, 1 << 20), -libc::EINVAL);
        assert_eq!(toe_set_keepalive(null, 0, 10, 10, 3), -libc::EINVAL);
        assert_eq!(toe_set_nodelay(null, 0, 1), -libc::EINVAL);
        assert_eq!(toe_set_cork(null, 0, 1), -libc::EINVAL);
        assert_eq!(toe_poll(null, 0), -libc::EINVAL);
        assert_eq!(toe_local_ip(null, std::ptr::null_mut()), -libc::EINVAL);
    }
}

#[test]
fn open_without_a_service_sets_errno() {
    let path = c"/nonexistent/flextoe/control.sock";
    // SAFETY: a NUL-terminated path.
    let t = unsafe { toe_open(path.as_ptr()) };
    assert!(t.is_null());
    assert_eq!(
        io::Error::last_os_error().raw_os_error(),
        Some(libc::ENOENT)
    );
}

#[test]
fn panics_do_not_cross_the_boundary() {
    assert_eq!(guard(-libc::EIO, || panic!("boom")), -libc::EIO);
    assert_eq!(guard(-libc::EIO, || 3), 3);
}

/// `struct toe_op` has the layout toe.h gives it on LP64 (int, int, then
/// pointer-sized fields, no padding beyond the C compiler's).
#[test]
fn toe_op_has_the_c_layout() {
    use std::mem::{align_of, offset_of, size_of};
    assert_eq!(offset_of!(ToeOp, conn), 0);
    assert_eq!(offset_of!(ToeOp, op), 4);
    assert_eq!(offset_of!(ToeOp, buf), 8);
    assert_eq!(offset_of!(ToeOp, len), 8 + size_of::<usize>());
    assert_eq!(offset_of!(ToeOp, result), 8 + 2 * size_of::<usize>());
    assert_eq!(size_of::<ToeOp>(), 8 + 3 * size_of::<usize>());
    assert_eq!(align_of::<ToeOp>(), align_of::<usize>());
}
