fn main() {
    // Fluent everywhere, so the app (and its screenshots) look the same on
    // every platform.
    let config = slint_build::CompilerConfiguration::new().with_style("fluent".into());
    slint_build::compile_with_config("ui/app.slint", config).expect("the Slint UI compiles");
}
