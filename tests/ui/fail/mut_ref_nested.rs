// A `&mut` inside another type is a `&mut` argument too.
#[cachefn::quickcache]
fn bump(counter: Option<&mut u64>) -> u64 {
    match counter {
        Some(c) => {
            *c += 1;
            *c
        }
        None => 0,
    }
}

fn main() {}
