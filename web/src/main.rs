//! The H5 client's entry point; the app itself is in the library.
fn main() {
    hongyan_web::start();
}
