// Every mistake is reported at once, each at its own token, and the
// function is kept so that its callers do not add errors of their own.
#[cachefn::quickcache(
    timout = 60,
    timeout = 0,
    vary_on = ["user", "id.0 +"],
    skip_arg = "id",
    name = "my name",
)]
const fn profile(id: u64) -> &'static str {
    let _ = id;
    "profile"
}

// The function is still defined: no "cannot find function `profile`".
#[allow(dead_code)]
fn caller() {
    let _ = profile(1);
}

fn main() {}
