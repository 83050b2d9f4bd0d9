//! `flextoe-run [--control PATH] [--no-fallback] -- CMD ARGS...`: runs a
//! program with its TCP sockets on the FlexTOE service (LD_PRELOAD of the
//! `libtoe_preload.so` next to this binary).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{exit, Command};

const USAGE: &str = "usage: flextoe-run [--control PATH] [--no-fallback] -- CMD [ARGS...]\n\
\n\
Runs CMD with libtoe_preload.so: its IPv4 TCP sockets use the FlexTOE\n\
service's engine. --control selects the service's control socket\n\
(default: $FLEXTOE_CONTROL, else /run/flextoe/control.sock). Without the\n\
service, sockets fall back to the kernel after one warning, unless\n\
--no-fallback is given (then flextoe-run fails at once, and TCP sockets\n\
created later fail with ECONNREFUSED).";

fn main() {
    let mut args = std::env::args_os().skip(1);
    let mut control: Option<OsString> = None;
    let mut no_fallback = false;
    let mut cmd: Vec<OsString> = Vec::new();
    while let Some(a) = args.next() {
        match a.to_str() {
            Some("--control") => match args.next() {
                Some(p) => control = Some(p),
                None => fail("--control needs a path"),
            },
            Some(s) if s.starts_with("--control=") => {
                control = Some(OsString::from(&s["--control=".len()..]));
            }
            Some("--no-fallback") => no_fallback = true,
            Some("-h" | "--help") => {
                println!("{USAGE}");
                exit(0);
            }
            Some("--") => {
                cmd.extend(args.by_ref());
                break;
            }
            Some(s) if s.starts_with('-') => fail(&format!("unknown option {s}")),
            _ => {
                cmd.push(a);
                cmd.extend(args.by_ref());
                break;
            }
        }
    }
    if cmd.is_empty() {
        fail("no command given");
    }
    let lib = match std::env::current_exe() {
        Ok(exe) => exe.with_file_name("libtoe_preload.so"),
        Err(e) => fail(&format!("cannot find my own path: {e}")),
    };
    if !lib.exists() {
        fail(&format!(
            "{} not found (cargo build --release -p toe-preload)",
            lib.display()
        ));
    }
    let control_path = control.clone().map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("FLEXTOE_CONTROL")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/run/flextoe/control.sock"))
    });
    if no_fallback {
        if let Err(e) = std::os::unix::net::UnixStream::connect(&control_path) {
            fail(&format!(
                "cannot reach the FlexTOE service at {}: {e} (--no-fallback)",
                control_path.display()
            ));
        }
    }
    let mut preload = OsString::from(&lib);
    if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|o| !o.is_empty()) {
        preload.push(":");
        preload.push(old);
    }
    let mut c = Command::new(&cmd[0]);
    c.args(&cmd[1..])
        .env("LD_PRELOAD", preload)
        .env("FLEXTOE_CONTROL", &control_path);
    if no_fallback {
        c.env("FLEXTOE_NO_FALLBACK", "1");
    }
    let e = c.exec();
    fail(&format!("cannot run {}: {e}", cmd[0].to_string_lossy()));
}

fn fail(msg: &str) -> ! {
    eprintln!("flextoe-run: {msg}");
    exit(2)
}
