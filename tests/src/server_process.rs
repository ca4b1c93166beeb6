//! A server process a test starts on a free loopback port, and can stop,
//! freeze (SIGSTOP), thaw and restart on the same port; killed on drop.
//! Shared by the Redis, Redis TLS and memcached test servers.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// `true` when tests must not skip (CI sets `CI=true`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// `Some(reason)` when `program arg` (`--version`, say) cannot run.
pub fn missing(program: &str, arg: &str) -> Option<String> {
    match Command::new(program).arg(arg).output() {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "`{program} {arg}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Some(format!("{program} cannot run ({e})")),
    }
}

/// Skip (print why, `None`) outside CI; fail in CI, which must run every test.
pub fn skip<T>(why: &str) -> Option<T> {
    if in_ci() {
        panic!("{why}: CI must run these tests");
    }
    eprintln!("skipping: {why}");
    None
}

/// Send `sig` (`"-STOP"`, `"-CONT"`) to process `pid`. A stop returns only
/// once the process really is stopped (state `T` in `/proc`): `kill`
/// returns before that, and a request sent in between would be answered.
pub fn signal_process(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
    if sig != "-STOP" {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The state follows the command name, which is in parentheses.
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        if matches!(state, Some('T') | Some('t') | None) {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The command that starts a server listening on the given port.
type Launch = Box<dyn Fn(u16) -> Command + Send + Sync>;

/// A running server process (see the module docs).
pub struct ServerProcess {
    name: &'static str,
    launch: Launch,
    port: u16,
    child: Option<Child>,
}

impl ServerProcess {
    /// Run `launch(port)` on a free port and wait until it listens.
    ///
    /// # Errors
    ///
    /// Why the server did not come up: it exited, or nothing listened
    /// within 10 s.
    pub fn start(
        name: &'static str,
        launch: impl Fn(u16) -> Command + Send + Sync + 'static,
    ) -> Result<ServerProcess, String> {
        let mut server = ServerProcess {
            name,
            launch: Box::new(launch),
            port: free_port(),
            child: None,
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let child = (self.launch)(self.port)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.name))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.child = None;
                return Err(format!("{} exited at start ({status})", self.name));
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err(format!("{} did not listen on {}", self.name, self.port));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kill the server (a frozen one too); its data is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal_process(child.id(), "-CONT");
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again, empty, on the same port.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(why) = self.spawn() {
            panic!("{why} on restart");
        }
    }

    /// SIGSTOP: the port accepts connections, nothing answers.
    pub fn freeze(&self) {
        if let Some(child) = &self.child {
            signal_process(child.id(), "-STOP");
        }
    }

    /// SIGCONT.
    pub fn thaw(&self) {
        if let Some(child) = &self.child {
            signal_process(child.id(), "-CONT");
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
