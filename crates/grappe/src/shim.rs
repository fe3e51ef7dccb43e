//! `grappe-shim`: the job shim, a small program of its own so that it starts fast with every
//! job (see `grappe_exec::shim`). The server finds it next to `grappe`.

fn main() -> std::process::ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let code = grappe_exec::shim::main(&args);
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}
