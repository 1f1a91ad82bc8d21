//! One solver per problem family. Each draws its parameters from the rng first and performs
//! every arithmetic step through the [`Calc`](crate::calc::Calc), so the same rng state with a
//! slipping calculator gives the same question with a flawed solution.
pub mod arithmetic;
pub mod fractions;
pub mod linear;
pub mod modular;
pub mod percent;
pub mod units;

use rand::Rng;

/// One of `items`, uniformly.
pub(crate) fn pick<'a, T, R: Rng>(rng: &mut R, items: &'a [T]) -> &'a T {
    &items[rng.gen_range(0..items.len())]
}

/// Names for word problems.
pub(crate) const NAMES: &[&str] = &[
    "Ava", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jo", "Kofi", "Lena",
    "Mia", "Noah", "Omar", "Priya",
];
