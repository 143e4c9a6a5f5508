pub mod admission;
pub mod defaults;
pub mod names;
pub mod quantity;
pub mod registry;
pub mod selector;
pub mod status;
pub mod validation;
