//! Another process that a test talks to: this test binary again, running
//! one test (the child's entry) that answers commands read from its stdin
//! with one `CHILD <answer>` line each. For tests of what one process sees
//! of another's writes.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process answering commands.
pub struct Talker {
    child: Child,
    stdin: ChildStdin,
    out: BufReader<ChildStdout>,
}

impl Talker {
    /// Run the test named `entry` of this binary in a child process, with
    /// `env` set.
    pub fn spawn(entry: &str, env: &[(&str, &str)]) -> Talker {
        let mut child = Command::new(std::env::current_exe().expect("the test binary"))
            .args(["--exact", entry, "--nocapture", "--test-threads=1"])
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the child process");
        let stdin = child.stdin.take().expect("piped stdin");
        let out = BufReader::new(child.stdout.take().expect("piped stdout"));
        Talker { child, stdin, out }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send one command line; the child's answer.
    pub fn ask(&mut self, cmd: &str) -> String {
        writeln!(self.stdin, "{cmd}").expect("the child process is gone");
        self.stdin.flush().expect("the child process is gone");
        let mut line = String::new();
        loop {
            line.clear();
            let n = self
                .out
                .read_line(&mut line)
                .expect("read the child's answer");
            assert!(n > 0, "the child process ended while answering `{cmd}`");
            // The first answer follows libtest's `test name ... ` on its line.
            if let Some((_, answer)) = line.split_once("CHILD ") {
                return answer.trim_end().to_owned();
            }
        }
    }

    /// Ask `cmd` until the answer is not `old`, for at most `within`; the
    /// last answer.
    pub fn ask_until_changed(&mut self, cmd: &str, old: &str, within: Duration) -> String {
        let start = Instant::now();
        loop {
            let v = self.ask(cmd);
            if v != old || start.elapsed() > within {
                return v;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Talker {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child's side: call `answer` with each command line read from stdin
/// and print its answer, until `quit` or the end of stdin.
pub fn serve(mut answer: impl FnMut(&str) -> String) {
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { return };
        let line = line.trim();
        if line.is_empty() || line == "quit" {
            return;
        }
        println!("CHILD {}", answer(line));
        std::io::stdout().flush().expect("write to the parent");
    }
}
