// Every parameter needs a name that the key and the helpers can refer to.
#[cachefn::quickcache]
fn add((a, b): (u32, u32)) -> u32 {
    a + b
}

fn main() {}
