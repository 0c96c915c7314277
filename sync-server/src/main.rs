//! `doran-server`: the relay binary.

fn main() {
    eprintln!("doran-server: not yet runnable");
    std::process::exit(2);
}
