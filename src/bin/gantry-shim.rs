//! `gantry-shim`: the process runtime's per-container supervisor (src/kubelet/runtime/shim.rs)
//! as a binary of its own. Node agents start one per container; it links only what the shim
//! uses, so it starts in a fraction of the time the full `gantry` binary takes.

fn main() {
    #[cfg(feature = "server")]
    {
        use gantry::kubelet::runtime::shim;
        match shim::ShimArgs::parse(std::env::args().skip(1)) {
            Ok(args) => std::process::exit(shim::run(args)),
            Err(e) => {
                eprintln!("gantry-shim: {e}");
                std::process::exit(2);
            }
        }
    }
    #[cfg(not(feature = "server"))]
    {
        eprintln!("gantry-shim: built without the server feature");
        std::process::exit(2);
    }
}
