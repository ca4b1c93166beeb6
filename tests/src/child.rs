//! Another process that a test talks to: this test binary again, running
//! one test (the child's entry) that answers commands read from its stdin
//! with one `CHILD <answer>` line each. For tests of what one process sees
//! of another's writes.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
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

/// A child process that runs one test entry of this binary by itself (no
/// commands), whose `CHILD <answer>` lines a thread reads as they come.
/// Killed (if still running) when dropped.
pub struct Runner {
    child: Child,
    answers: Receiver<String>,
}

impl Runner {
    /// Run the test named `entry` of this binary in a child process, with
    /// `env` set.
    pub fn spawn(entry: &str, env: &[(&str, &str)]) -> Runner {
        let mut child = Command::new(std::env::current_exe().expect("the test binary"))
            .args(["--exact", entry, "--nocapture", "--test-threads=1"])
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start a child process");
        let out = BufReader::new(child.stdout.take().expect("piped stdout"));
        let (tx, answers) = channel();
        std::thread::spawn(move || {
            for line in out.lines() {
                let Ok(line) = line else { return };
                if let Some((_, answer)) = line.split_once("CHILD ") {
                    if tx.send(answer.trim_end().to_owned()).is_err() {
                        return;
                    }
                }
            }
        });
        Runner { child, answers }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the child still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The child's next `CHILD ...` line; `None` if it ended without one.
    pub fn answer(&mut self) -> Option<String> {
        self.answers.recv().ok()
    }

    /// The same, or a panic when none comes `within` (a hung child fails
    /// its test instead of hanging it).
    pub fn answer_within(&mut self, within: Duration) -> Option<String> {
        match self.answers.recv_timeout(within) {
            Ok(answer) => Some(answer),
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => {
                panic!("child {} did not answer within {within:?}", self.pid())
            }
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
