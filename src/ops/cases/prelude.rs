//! What the ops' case builders (each op's `cases` module) share: the types they build with,
//! seeded random values and the case's assembly.

pub(crate) use super::{feeds, rand, Case};
pub(crate) use crate::error::Result;
pub(crate) use crate::graph::Graph;
pub(crate) use crate::ops::attention::{AttentionExtras, QkvSource};
pub(crate) use crate::ops::upsample::UpsampleKind;
pub(crate) use crate::rng::Rng;
pub(crate) use crate::tensor::{DType, HostData, HostTensor, TensorDesc};

pub(crate) fn done(graph: Graph, items: Vec<(&str, HostTensor)>) -> Result<Case> {
    Ok(Case {
        graph,
        feeds: feeds(items),
    })
}

pub(crate) fn dims(lead: &[usize], tail: &[usize]) -> Vec<usize> {
    lead.iter().chain(tail).copied().collect()
}
