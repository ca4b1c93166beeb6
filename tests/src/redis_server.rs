//! Real `redis-server` processes for tests, on free loopback ports.

use std::process::{Command, Stdio};

pub use crate::server_process::in_ci;
use crate::server_process::{missing, skip, ServerProcess};

/// A `redis-server` this test started; killed on drop.
pub struct RedisServer {
    process: ServerProcess,
}

impl RedisServer {
    /// Start a server on a free port; `None` (with a printed reason) when
    /// `redis-server` is not installed, except in CI, where that fails.
    pub fn start() -> Option<RedisServer> {
        if let Some(why) = missing("redis-server", "--version") {
            return skip(&format!("{why} (apt-get install -y redis-server)"));
        }
        let process = ServerProcess::start("redis-server", |port| {
            let mut cmd = Command::new("redis-server");
            cmd.args(["--port", &port.to_string()])
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--protected-mode", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            cmd
        });
        Some(RedisServer {
            process: process.unwrap_or_else(|why| panic!("{why}")),
        })
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.process.port())
    }

    /// Kill the server (its data is gone: it keeps nothing on disk).
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// Start it again on the same port.
    pub fn restart(&mut self) {
        self.process.restart();
    }

    /// The server's process (to stop, restart, freeze and thaw it).
    pub fn process(&mut self) -> &mut ServerProcess {
        &mut self.process
    }

    /// SIGSTOP: the port accepts connections, nothing answers.
    pub fn freeze(&self) {
        self.process.freeze();
    }

    /// SIGCONT.
    pub fn thaw(&self) {
        self.process.thaw();
    }

    /// A plain redis-rs connection, for checks behind the cache's back.
    pub fn raw(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("connect to the test server")
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
    process: ServerProcess,
    dir: std::path::PathBuf,
    options: TlsOptions,
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
        let launch = {
            let (dir, options) = (dir.clone(), options.clone());
            move |port: u16| {
                let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
                let log = std::fs::File::create(dir.join("redis.log")).expect("create a log file");
                let mut cmd = Command::new("redis-server");
                cmd.args(["--port", "0", "--tls-port", &port.to_string()])
                    .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                    .args(["--protected-mode", "no"])
                    .args(["--tls-cert-file", &path("server.crt")])
                    .args(["--tls-key-file", &path("server.key")])
                    .args(["--tls-ca-cert-file", &path("ca.crt")])
                    .args([
                        "--tls-auth-clients",
                        if options.require_client_cert {
                            "yes"
                        } else {
                            "no"
                        },
                    ]);
                if let Some(password) = &options.password {
                    cmd.args(["--requirepass", password]);
                }
                cmd.stdout(log.try_clone().expect("clone the log file"))
                    .stderr(log);
                cmd
            }
        };
        match ServerProcess::start("redis-server", launch) {
            Ok(process) => Some(TlsRedisServer {
                process,
                dir,
                options,
            }),
            Err(why) => {
                let log = std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
                let _ = std::fs::remove_dir_all(&dir);
                skip(&format!(
                    "{why}: no TLS redis-server (built without TLS?): {}",
                    log.trim()
                ))
            }
        }
    }

    /// `rediss://127.0.0.1:PORT/0`, with the password when there is one.
    pub fn url(&self) -> String {
        match &self.options.password {
            Some(password) => format!("rediss://:{password}@127.0.0.1:{}/0", self.port()),
            None => format!("rediss://127.0.0.1:{}/0", self.port()),
        }
    }

    /// The TLS port.
    pub fn port(&self) -> u16 {
        self.process.port()
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
        self.process.freeze();
    }

    /// Kill the server.
    pub fn stop(&mut self) {
        self.process.stop();
    }
}

impl Drop for TlsRedisServer {
    fn drop(&mut self) {
        self.process.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The ids in a `CLIENT LIST` reply of the clients that track keys (`t`
/// among their flags), and, given `name`, are named so.
pub fn tracking_client_ids(client_list: &str, name: Option<&str>) -> Vec<String> {
    let name = name.map(|n| format!("name={n}"));
    client_list
        .lines()
        .filter(|l| {
            let fields: Vec<&str> = l.split(' ').collect();
            name.as_deref().is_none_or(|n| fields.contains(&n))
                && fields
                    .iter()
                    .any(|f| f.starts_with("flags=") && f.contains('t'))
        })
        .filter_map(|l| {
            l.split(' ')
                .find_map(|f| f.strip_prefix("id="))
                .map(str::to_owned)
        })
        .collect()
}

/// Calls per command in the text of `INFO commandstats`, e.g.
/// `{"get": 50, "mget": 1}`.
pub fn parse_commandstats(info: &str) -> std::collections::HashMap<String, u64> {
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}
