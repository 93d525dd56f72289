//! Reading data files, shared by the checker (which peeks at the first rows)
//! and the runtime (which reads them whole).

pub mod json;
pub mod records;
pub mod smart;
