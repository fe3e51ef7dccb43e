//! The one integration test binary of grappe-dataset.

mod card;
mod profile;
mod render;
mod splits;
