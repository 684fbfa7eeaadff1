fn main() {
    // Fluent everywhere, so the app (and its screenshots) look the same on
    // every platform. Debug builds keep the elements' names, so the tests
    // can walk the window's elements (Slint's ElementHandle) and check
    // every screen's layout.
    let debug = std::env::var("PROFILE").is_ok_and(|p| p == "debug");
    let config = slint_build::CompilerConfiguration::new()
        .with_style("fluent".into())
        .with_debug_info(debug);
    slint_build::compile_with_config("ui/app.slint", config).expect("the Slint UI compiles");
}
