// A lifetime no shared tier can keep (Redis refuses an expiry past i64
// milliseconds): a compile error, not a value that is never stored.
#[cachefn::quickcache(timeout = 18446744073709551615)]
fn square(x: u64) -> u64 {
    x * x
}

fn main() {}
