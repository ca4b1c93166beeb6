//! Real `memcached` processes for tests, on free loopback ports, a plain
//! text-protocol client for checks behind the cache's back, and a proxy
//! that counts round trips.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::server_process::{missing, skip, ServerProcess};

/// A `memcached` this test started; killed on drop.
pub struct MemcachedServer {
    process: ServerProcess,
}

/// memcached refuses to run as root unless told which user to be.
fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl MemcachedServer {
    /// Start a server on a free port; `None` (with a printed reason) when
    /// `memcached` is not installed, except in CI, where that fails.
    pub fn start() -> Option<MemcachedServer> {
        if let Some(why) = missing("memcached", "-V") {
            return skip(&format!("{why} (apt-get install -y memcached)"));
        }
        let as_root = running_as_root();
        let process = ServerProcess::start("memcached", move |port| {
            let mut cmd = Command::new("memcached");
            cmd.args(["-l", "127.0.0.1", "-p", &port.to_string(), "-U", "0"])
                .args(["-m", "64", "-t", "2"]);
            if as_root {
                cmd.args(["-u", "root"]);
            }
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
            cmd
        });
        Some(MemcachedServer {
            process: process.unwrap_or_else(|why| panic!("{why}")),
        })
    }

    /// `memcache://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("memcache://127.0.0.1:{}", self.port())
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// Kill the server (its data is gone).
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// Start it again, empty, on the same port.
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

    /// A plain connection, for checks behind the cache's back.
    pub fn raw(&self) -> RawMemcached {
        RawMemcached::connect(self.port())
    }
}

/// A minimal memcached client (text and meta commands), independent of the
/// `Memcached` tier under test.
pub struct RawMemcached {
    reader: BufReader<TcpStream>,
}

impl RawMemcached {
    /// Connect to `127.0.0.1:port`.
    pub fn connect(port: u16) -> RawMemcached {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to memcached");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        RawMemcached {
            reader: BufReader::new(stream),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).unwrap();
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        line.trim_end().to_owned()
    }

    /// `get key`: the value, if any.
    pub fn get(&mut self, key: &str) -> Option<Vec<u8>> {
        self.send(format!("get {key}\r\n").as_bytes());
        let head = self.line();
        if head == "END" {
            return None;
        }
        let len: usize = head
            .split(' ')
            .nth(3)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected reply {head}"));
        let mut data = vec![0; len + 2];
        self.reader.read_exact(&mut data).unwrap();
        data.truncate(len);
        assert_eq!(self.line(), "END");
        Some(data)
    }

    /// `set key 0 exptime`.
    pub fn set(&mut self, key: &str, value: &[u8], exptime: i64) {
        self.send(format!("set {key} 0 {exptime} {}\r\n", value.len()).as_bytes());
        self.send(value);
        self.send(b"\r\n");
        assert_eq!(self.line(), "STORED");
    }

    /// `delete key`: `true` if it was there.
    pub fn delete(&mut self, key: &str) -> bool {
        self.send(format!("delete {key}\r\n").as_bytes());
        self.line() == "DELETED"
    }

    /// Seconds the item has left (`-1`: no expiry), from `mg key t`.
    pub fn ttl(&mut self, key: &str) -> Option<i64> {
        self.send(format!("mg {key} t\r\n").as_bytes());
        let line = self.line();
        if line == "EN" {
            return None;
        }
        line.split(' ')
            .find_map(|t| t.strip_prefix('t'))
            .and_then(|t| t.parse().ok())
    }

    /// The numeric counters of `stats`.
    pub fn stats(&mut self) -> HashMap<String, u64> {
        self.send(b"stats\r\n");
        let mut stats = HashMap::new();
        loop {
            let line = self.line();
            if line == "END" {
                return stats;
            }
            let mut parts = line.split(' ');
            if let (Some("STAT"), Some(name), Some(value)) =
                (parts.next(), parts.next(), parts.next())
            {
                if let Ok(n) = value.parse() {
                    stats.insert(name.to_owned(), n);
                }
            }
        }
    }
}

/// A TCP proxy in front of a server that counts round trips: every time a
/// client sends after the server answered (or first on a connection).
pub struct RoundTripProxy {
    port: u16,
    rounds: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl RoundTripProxy {
    /// Forward a free loopback port to `127.0.0.1:target`.
    pub fn start(target: u16) -> RoundTripProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let rounds = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (rounds.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let server = TcpStream::connect(("127.0.0.1", target)).unwrap();
                        client.set_nodelay(true).unwrap();
                        server.set_nodelay(true).unwrap();
                        // Whether the last bytes went to the client (a reply).
                        let answered = Arc::new(Mutex::new(true));
                        pipe(client.try_clone().unwrap(), server.try_clone().unwrap(), {
                            let (answered, rounds) = (answered.clone(), r.clone());
                            move || {
                                let mut a = answered.lock().unwrap();
                                if *a {
                                    rounds.fetch_add(1, Ordering::SeqCst);
                                }
                                *a = false;
                            }
                        });
                        pipe(server, client, move || *answered.lock().unwrap() = true);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        RoundTripProxy { port, rounds, stop }
    }

    /// `memcache://127.0.0.1:PORT` of the proxy.
    pub fn url(&self) -> String {
        format!("memcache://127.0.0.1:{}", self.port)
    }

    /// Round trips since the last call (and resets the count).
    pub fn take_rounds(&self) -> usize {
        self.rounds.swap(0, Ordering::SeqCst)
    }
}

impl Drop for RoundTripProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Copy `from` to `to` on a thread, calling `seen` before forwarding each chunk.
fn pipe(mut from: TcpStream, mut to: TcpStream, seen: impl Fn() + Send + 'static) {
    std::thread::spawn(move || {
        let mut buf = vec![0; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    seen();
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}
