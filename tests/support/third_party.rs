//! Real third-party paste servers, as installed by scripts/install-deps.sh
//! (pinned, under `$DEVICE_LOOKUP_TOOLS`, default /opt/device-lookup-test-tools):
//! rustypaste and pinnwand, each on a free loopback port under a test's
//! directory, killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, http_get, wait_until};

pub fn tool(path: &str) -> PathBuf {
    let root = std::env::var("DEVICE_LOOKUP_TOOLS").unwrap_or_else(|_| "/opt/device-lookup-test-tools".into());
    let p = Path::new(&root).join(path);
    assert!(p.exists(), "{} is missing: run `bash scripts/install-deps.sh`, which installs it", p.display());
    p
}

pub struct Server {
    pub base: String,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(mut cmd: Command, dir: &Path, name: &str, port: u16) -> Server {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let child = cmd.stdout(Stdio::from(log.try_clone().unwrap())).stderr(Stdio::from(log)).spawn().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = Server { base, child };
    let probe = format!("{}/", server.base);
    wait_until(&format!("{name} to answer"), Duration::from_secs(30), || {
        assert!(server.child.try_wait().unwrap().is_none(), "{name} exited; see {name}.log");
        http_get(&probe).is_ok()
    });
    server
}

/// rustypaste 0.18, taking uploads in the multipart field `file`, at most
/// `max_content_length` bytes (`"1KB"`, ...).
pub fn rustypaste(dir: &Path, max_content_length: &str) -> Server {
    let port = free_port();
    let home = dir.join("rustypaste");
    std::fs::create_dir_all(&home).unwrap();
    let config = format!(
        r#"
[server]
address = "127.0.0.1:{port}"
url = "http://127.0.0.1:{port}"
max_content_length = "{max_content_length}"
upload_path = "{upload}"

[paste]
random_url = {{ type = "alphanumeric", length = 10 }}
default_extension = "txt"
duplicate_files = true
"#,
        upload = home.join("upload").display()
    );
    std::fs::write(home.join("config.toml"), config).unwrap();
    let mut cmd = Command::new(tool("rustypaste/bin/rustypaste"));
    cmd.env("CONFIG", home.join("config.toml")).current_dir(&home);
    start(cmd, dir, "rustypaste", port)
}

/// pinnwand 1.5 with an in-memory database; `create_per_second` pastes a
/// second from one address before its rate limit answers (pinnwand's own
/// default is one every two seconds).
pub fn pinnwand(dir: &Path, create_per_second: u32) -> Server {
    let port = free_port();
    let config = format!(
        r#"
database_uri = "sqlite:///:memory:"
paste_size = 262144

[ratelimit.read]
capacity = 100000
consume = 1
refill = 100000

[ratelimit.create]
capacity = {c}
consume = 1
refill = {c}

[ratelimit.delete]
capacity = 2
consume = 2
refill = 1
"#,
        c = create_per_second
    );
    let path = dir.join("pinnwand.toml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = Command::new(tool("pinnwand/bin/python"));
    cmd.args(["-m", "pinnwand", "--configuration-path"]).arg(&path).args(["http", "--port", &port.to_string()]);
    start(cmd, dir, "pinnwand", port)
}
