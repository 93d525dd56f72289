fn main() {
    println!("stpipe");
}
