//! Real `redis-server` processes for tests, on free loopback ports.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` this test started; killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
}

/// `true` when tests must not skip (CI sets `CI=true`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl RedisServer {
    /// Start a server on a free port; `None` (with a printed reason) when
    /// `redis-server` is not installed, except in CI, where that fails.
    pub fn start() -> Option<RedisServer> {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            let why = "redis-server is not installed (apt-get install -y redis-server)";
            if in_ci() {
                panic!("{why}: CI must run the Redis tests");
            }
            eprintln!("skipping: {why}");
            return None;
        }
        let mut server = RedisServer {
            child: None,
            port: free_port(),
        };
        server.spawn();
        Some(server)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--protected-mode", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn signal(&self, sig: &str) {
        if let Some(child) = &self.child {
            crate::signal_process(child.id(), sig);
        }
    }

    /// Kill the server (its data is gone: it keeps nothing on disk).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            self.signal_child(&child, "-CONT");
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn signal_child(&self, child: &Child, sig: &str) {
        crate::signal_process(child.id(), sig);
    }

    /// Start it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// SIGSTOP: the port accepts connections, nothing answers.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT.
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    /// A plain redis-rs connection, for checks behind the cache's back.
    pub fn raw(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("connect to the test server")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What a [`TlsRedisServer`] asks of its clients.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// `--requirepass`.
    pub password: Option<String>,
    /// `--tls-auth-clients yes`: clients must present a certificate the test
    /// CA signed (mutual TLS).
    pub require_client_cert: bool,
}

/// A `redis-server` that speaks only TLS (`--port 0 --tls-port P`), with a CA,
/// a server certificate (for `IP:127.0.0.1` and `DNS:localhost`) and a client
/// certificate made with the `openssl` CLI in a temporary directory. The
/// server is killed and the directory removed on drop.
pub struct TlsRedisServer {
    child: Option<Child>,
    port: u16,
    dir: std::path::PathBuf,
    options: TlsOptions,
}

/// `Some(reason)` when `program --version` (or `version`) cannot run.
fn missing(program: &str, arg: &str) -> Option<String> {
    match Command::new(program).arg(arg).output() {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "`{program} {arg}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Some(format!("{program} cannot run ({e})")),
    }
}

/// Skip (print why, `None`) outside CI; fail in CI.
fn skip<T>(why: &str) -> Option<T> {
    if in_ci() {
        panic!("{why}: CI must run the Redis TLS tests");
    }
    eprintln!("skipping: {why}");
    None
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh directory under the system temp dir.
fn temp_dir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!(
        "cachefn-tls-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).expect("create a temp dir");
    dir
}

/// `ca.crt`/`ca.key`, `server.crt`/`server.key` and `client.crt`/`client.key`
/// (P-256 keys, valid for two days) in `dir`.
fn make_certificates(dir: &std::path::Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    let mut ca = vec!["req", "-x509", "-nodes", "-days", "2"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-subj",
        "/CN=cachefn test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca);
    for (name, cn, ext) in [
        (
            "server",
            "/CN=localhost",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        ),
        (
            "client",
            "/CN=cachefn test client",
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=clientAuth\n",
        ),
    ] {
        let (key, csr, crt, extfile) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        std::fs::write(dir.join(&extfile), ext).expect("write an extension file");
        let mut req = vec!["req", "-nodes"];
        req.extend(ec);
        req.extend(["-keyout", &key, "-out", &csr, "-subj", cn]);
        openssl(dir, &req);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &crt,
                "-extfile",
                &extfile,
            ],
        );
    }
}

impl TlsRedisServer {
    /// Start a TLS server on a free port with `options`; `None` (with a
    /// printed reason) when `redis-server`, its TLS support or `openssl` is
    /// missing, except in CI, where that fails.
    pub fn start(options: TlsOptions) -> Option<TlsRedisServer> {
        for (program, arg) in [("redis-server", "--version"), ("openssl", "version")] {
            if let Some(why) = missing(program, arg) {
                return skip(&format!("{why} (apt-get install -y redis-server openssl)"));
            }
        }
        let dir = temp_dir();
        make_certificates(&dir);
        let mut server = TlsRedisServer {
            child: None,
            port: free_port(),
            dir,
            options,
        };
        if let Err(why) = server.spawn() {
            return skip(&why);
        }
        Some(server)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let path = |f: &str| self.dir.join(f).to_string_lossy().into_owned();
        let log = std::fs::File::create(self.dir.join("redis.log")).expect("create a log file");
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", "0", "--tls-port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--protected-mode", "no"])
            .args(["--tls-cert-file", &path("server.crt")])
            .args(["--tls-key-file", &path("server.key")])
            .args(["--tls-ca-cert-file", &path("ca.crt")])
            .args([
                "--tls-auth-clients",
                if self.options.require_client_cert {
                    "yes"
                } else {
                    "no"
                },
            ]);
        if let Some(password) = &self.options.password {
            cmd.args(["--requirepass", password]);
        }
        let child = cmd
            .stdout(log.try_clone().expect("clone the log file"))
            .stderr(log)
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() >= deadline {
                self.stop();
                let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
                return Err(format!(
                    "redis-server did not start with TLS on {} (built without TLS?): {}",
                    self.port,
                    log.trim()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// `rediss://127.0.0.1:PORT/0`, with the password when there is one.
    pub fn url(&self) -> String {
        match &self.options.password {
            Some(password) => format!("rediss://:{password}@127.0.0.1:{}/0", self.port),
            None => format!("rediss://127.0.0.1:{}/0", self.port),
        }
    }

    /// The TLS port.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn read(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(file)).expect("read a test certificate")
    }

    /// The test CA's certificate (PEM): what signed the server's.
    pub fn ca_pem(&self) -> Vec<u8> {
        self.read("ca.crt")
    }

    /// The server's certificate (PEM).
    pub fn server_cert_pem(&self) -> Vec<u8> {
        self.read("server.crt")
    }

    /// A client certificate the test CA signed, and its key (PEM).
    pub fn client_pem(&self) -> (Vec<u8>, Vec<u8>) {
        (self.read("client.crt"), self.read("client.key"))
    }

    /// The server's key (PEM): a key that does not belong to the client certificate.
    pub fn server_key_pem(&self) -> Vec<u8> {
        self.read("server.key")
    }

    /// SIGSTOP: the port accepts connections, nothing answers (not even the
    /// TLS handshake).
    pub fn freeze(&self) {
        if let Some(child) = &self.child {
            crate::signal_process(child.id(), "-STOP");
        }
    }

    /// Kill the server.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TlsRedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
