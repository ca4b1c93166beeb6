// A hit skips the body, so a `&mut` argument would be changed only on a miss.
#[cachefn::quickcache]
fn push_total(items: &mut Vec<u64>, extra: u64) -> u64 {
    items.push(extra);
    items.iter().sum()
}

fn main() {}
