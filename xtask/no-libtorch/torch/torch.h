// Found only when libtorch is missing: `.cargo/config.toml` puts this
// directory on CPLUS_INCLUDE_PATH, which the compiler searches after
// torch-sys's -I directories (target/libtorch/include).
#error "libtorch is not set up. Run `cargo xtask setup` in the graft repository: it assembles libtorch 2.13.0 in the cache and links it at target/libtorch (`cargo xtask test` and `cargo xtask reproduce` do this by themselves)."
