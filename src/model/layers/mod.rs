//! Building blocks of EDTalk, named after the official modules (and the checkpoint keys).

pub mod conv;
pub mod eem;
pub mod im2col;
pub mod linear;
pub mod styled;
pub mod upfirdn;

pub use conv::{Conv2d, ConvLayer, ConvUse, ConvWeight, EqualConv2d, FusedLeakyRelu};
pub use eem::{Adain, Eem};
pub use linear::{EqualLinear, EqualMlp, Linear};
pub use styled::{ConstantInput, FlowOutput, ModulatedConv2d, StyledConv, ToFlow, ToRgb};
pub use upfirdn::Fir;
