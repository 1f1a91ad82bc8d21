//! One test per family of answers the peers' suites and the unseen cases exercise:
//! calculus operators, grouping brackets, set algebra, gcd/lcm of symbols, named quantities,
//! matrix arithmetic, rounded golds, repeated elements, assignment lists, conclusions in prose.

use crate::{answers_equal, Checker, CheckerOptions};

fn eq(pred: &str, gold: &str) -> bool {
    answers_equal(pred, gold, &CheckerOptions::default())
}

fn check(response: &str, gold: &str) -> bool {
    Checker::new(CheckerOptions::default())
        .check(response, gold)
        .correct
}

#[test]
fn integrals_compare_by_variable_bounds_and_body() {
    assert!(eq(
        "\\int (x^2 - y)dx",
        "\\int \\left(x^{2} - y\\right)\\, dx"
    ));
    assert!(eq("\\int^b_a x dx", "\\int\\limits_{a}^{b} x\\, dx"));
    assert!(eq("\\int_{  }^{}x dx", "\\int x\\, dx"));
    assert!(eq("\\int \\frac{3 dz}{z}", "\\int \\frac{3}{z}\\, dz"));
    assert!(eq(
        "\\int \\frac{3 \\cdot d\\theta}{\\theta}",
        "\\int \\frac{3}{\\theta}\\, d\\theta"
    ));
    assert!(eq("\\int_0^7 dx", "\\int_0^7 1\\,dx"));
    // Different body, bounds or variable: different integrals.
    assert!(!eq("\\int_a^b x dx", "\\int_a^b x^2 dx"));
    assert!(!eq("\\int_0^1 x dx", "\\int_0^2 x dx"));
    assert!(!eq("\\int x dx", "\\int x dy"));
}

#[test]
fn sums_products_limits_derivatives() {
    assert!(eq("\\sum_{k = 1}^3 c", "\\sum_{k=1}^{3} c"));
    assert!(eq("\\prod^c_{a = b} x", "\\prod_{a=b}^{c} x"));
    // The body is compared as an expression: a product in another order is the same sum.
    assert!(eq(
        "F_n = \\sum_{k=0}^{n-1} F_{n-k-1} F_k",
        "F_n = \\sum_{k=0}^{n-1} F_k F_{n-k-1}"
    ));
    assert!(!eq("\\sum_{k=1}^{10} k^2", "\\sum_{k=1}^{10} k^3"));
    assert!(!eq("\\sum_{k=1}^{10} k", "\\prod_{k=1}^{10} k"));
    assert!(eq("\\lim_{x \\rightarrow 3} a", "\\lim_{x \\to 3^+} a"));
    assert!(eq("\\lim_{x \\to 3^{-}} a", "\\lim_{x \\to 3^-} a"));
    assert!(!eq("\\lim_{x \\to 3^{-}} a", "\\lim_{x \\to 3^+} a"));
    assert!(!eq("\\lim_{x \\to 2} a", "\\lim_{x \\to 3} a"));
    assert!(eq(
        "\\frac{d}{dx} [ \\tan x ]",
        "\\frac{d}{d x} \\tan{\\left(x \\right)}"
    ));
    assert!(!eq("\\frac{d}{dx} \\tan x", "\\frac{d}{dx} \\sin x"));
}

#[test]
fn braces_and_brackets_group_like_parentheses() {
    let gold = "\\left(1 + 2\\right) \\left(3 - 4\\right)";
    for p in [
        "\\{1+2\\}\\{3-4\\}",
        "\\lbrace1+2\\rbrace\\lbrace3-4\\rbrace",
        "[1+2][3-4]",
        "\\lbrack1+2\\rbrack\\lbrack3-4\\rbrack",
    ] {
        assert!(eq(p, gold), "{p}");
    }
    assert!(eq("\\sin\\{\\theta \\}", "\\sin{\\left(\\theta \\right)}"));
    assert!(eq("\\sin\\lbrack\\theta \\rbrack", "\\sin(\\theta)"));
    // A set on its own is still a set.
    assert!(!eq("\\{3\\}", "\\{1, 3\\}"));
}

#[test]
fn set_algebra_on_finite_sets() {
    assert!(eq("{1,2} \\cup {2,3}", "\\{1, 2, 3\\}"));
    assert!(eq("{1,2} \\cap {2,3}", "\\{2\\}"));
    assert!(eq("{1,2} ∖ {2}", "\\{1\\}"));
    assert!(eq("({1,2} \\cup {3,4}) \\cap {2,3}", "\\{2, 3\\}"));
    assert!(eq("(0,1) \\cap {0.5}", "\\{\\frac{1}{2}\\}"));
    assert!(eq("{1,2} \\cup [0,3]", "[0,3]"));
    assert!(eq(
        "[0,1] \\setminus {0.5}",
        "\\left[0, 1\\right] \\setminus \\left\\{0.5\\right\\}"
    ));
    assert!(!eq("{1,2} \\cap {2,3}", "\\{1, 2, 3\\}"));
    assert!(!eq("{1,2} \\setminus {2}", "\\{2\\}"));
}

#[test]
fn gcd_and_lcm_of_symbols_and_irrationals() {
    assert!(eq("\\gcd(x, y)", "1"));
    assert!(eq("\\gcd(125, 50x)", "25"));
    assert!(eq("\\gcd(y, y)", "y"));
    assert!(eq("\\lcm(2y, x)", "2 x y"));
    assert!(eq("\\lcm(y, -x)", "- x y"));
    assert!(eq("\\lcm(\\sqrt{5}, \\sqrt{2})", "\\sqrt{10}"));
    assert!(eq("\\lcm(\\pi, 3)", "3 \\pi"));
    assert!(eq(
        "\\lcm(x + 76, \\sqrt{x} * 4)",
        "4 x^{\\frac{3}{2}} + 304 \\sqrt{x}"
    ));
    // A non-integer coefficient makes the domain the rationals: monic results.
    assert!(eq("y + \\gcd(0.4x, 8/3) / 2", "y + \\frac{1}{2}"));
    assert!(eq("y + \\lcm(0.4x, 8/3) / 2", "\\frac{x}{2} + y"));
    assert!(!eq("\\gcd(2x, 4x)", "x"));
    assert!(eq("\\gcd(2x, 4x)", "2x"));
    // Commas inside the arguments of gcd/lcm/max/min separate arguments, not thousands.
    assert!(eq("\\gcd(6,321,429)", "3"));
    assert!(eq("\\max(9,876,543)", "876"));
    assert!(eq("6,321,429", "6321429"));
}

#[test]
fn variable_placeholder_and_unknown_commands_are_symbols() {
    assert!(eq("4\\cdot\\variable{x}", "4 x"));
    assert!(eq("\\variable{x_1}", "x_1"));
    assert!(eq("\\variable{1}", "1"));
    assert!(!eq("\\variable{x}", "y"));
    assert!(check("$0$", "$1 = \\zzz = x = 0$"));
}

#[test]
fn gold_naming_its_quantity() {
    assert!(check("$$1$$", "$$|AB|=1$$"));
    assert!(check(
        "$\\frac{1}{\\sqrt{6}}$",
        "$\\frac{NO}{BO}=\\frac{1}{\\sqrt{6}}$"
    ));
    assert!(check("$0$", "$a = b = 0$"));
    assert!(!check("$2$", "$$|AB|=1$$"));
}

#[test]
fn approximation_after_a_name() {
    assert!(check("$x\\approx11$", "$11$"));
    assert!(check("$x = 11.2 \\approx 11$", "$11.2$"));
    assert!(!check("$x\\approx12$", "$11$"));
}

#[test]
fn double_inequality_on_an_expression_is_an_interval() {
    assert!(check("$(0,1)$", "$0<f(x)<1$"));
    assert!(check("$[0,1)$", "$1 > f(x) \\geq 0$"));
    assert!(!check("$(0,1]$", "$0<f(x)<1$"));
}

#[test]
fn matrix_arithmetic_written_out() {
    assert!(check(
        "The sum is $\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix} + \\begin{pmatrix}5 & 6 \\\\ 7 & 8\\end{pmatrix}$",
        "$\\begin{pmatrix}6 & 8 \\\\ 10 & 12\\end{pmatrix}$"
    ));
    assert!(eq(
        "2\\begin{pmatrix}1\\\\3\\end{pmatrix} - \\begin{pmatrix}-1\\\\2\\end{pmatrix}",
        "\\begin{pmatrix}3\\\\4\\end{pmatrix}"
    ));
    assert!(eq(
        "\\begin{pmatrix}1&0\\\\0&1\\end{pmatrix}\\begin{pmatrix}3\\\\-2\\end{pmatrix}",
        "\\begin{pmatrix}3\\\\-2\\end{pmatrix}"
    ));
    assert!(!eq(
        "\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix} + \\begin{pmatrix}5 & 6 \\\\ 7 & 8\\end{pmatrix}",
        "\\begin{pmatrix}6 & 8 \\\\ 10 & 13\\end{pmatrix}"
    ));
}

#[test]
fn gold_rounded_matrix_entries() {
    assert!(eq(
        "\\begin{pmatrix}0.290243531202435\\\\0.196008371385084\\\\-0.186381278538813\\end{pmatrix}",
        "(\\begin{pmatrix}0.29\\\\0.196\\\\-0.186\\\\\\end{pmatrix})"
    ));
    assert!(!eq(
        "\\begin{pmatrix}0.280243531202435\\\\0.196008371385084\\end{pmatrix}",
        "\\begin{pmatrix}0.29\\\\0.196\\end{pmatrix}"
    ));
}

#[test]
fn repeated_elements_and_assignment_lists() {
    assert!(eq("(1,2), (3,4), (1,2)", "(3,4), (1,2)"));
    assert!(eq("\\{1, 1, 2\\}", "\\{1, 2\\}"));
    assert!(!eq("\\{1, 1, 2\\}", "\\{1, 2, 3\\}"));
    assert!(eq("(5,2),(7,2)", "p=5,q=2;p=7,q=2"));
    assert!(eq("1,2;3,4;5,6", "\\{(1,2),(3,4),(5,6)\\}"));
    assert!(!eq("(5,2),(7,3)", "p=5,q=2;p=7,q=2"));
    // Inside brackets `;` is one more separator.
    assert!(eq("(1,1;2,2)", "(1, 1, 2, 2)"));
}

#[test]
fn percent_abbreviation_and_binomials() {
    assert!(check("$\\boxed{28 pct}", "$28\\%$"));
    assert!(check("28 percent", "$28\\%$"));
    assert!(!check("$\\boxed{29 pct}$", "$28\\%$"));
    assert!(eq("{16 \\choose 2}", "120"));
    assert!(eq("{x \\choose y}", "\\binom{x}{y}"));
    assert!(!eq("{x \\choose y}", "\\binom{y}{x}"));
}

#[test]
fn concluding_sentence_states_the_answer() {
    let r = "We get $$\\frac{x'}{x} \\geq 2.$$ Therefore, the error increases by 100%.";
    assert!(check(r, "$100\\%$"));
    assert!(!check(r, "$50\\%$"));
    // A sentence that does not conclude, or does not end with the number, is not an answer.
    assert!(check("We find $x = 5$ after 2 steps.", "5"));
}

#[test]
fn step_functions_of_variables_are_compared_by_sampling() {
    // Near zero all these floors agree; they must still differ.
    assert!(!eq("\\lceil n / 12\\rceil+1", "\\lceil n / 2\\rceil+1"));
    assert!(!eq(
        "-(\\lfloor\\sqrt{n-1}\\rfloor)",
        "\\lfloor\\sqrt{n-1}\\rfloor"
    ));
    assert!(!eq(
        "m n-\\lfloor m / 3\\rfloor",
        "m n-\\lfloor m / 2\\rfloor"
    ));
    assert!(!eq(
        "(-1)^{\\lceil n/12 \\rceil}",
        "(-1)^{\\lceil n/2 \\rceil}"
    ));
    assert!(eq(
        "\\lceil n / 2\\rceil+1",
        "\\lceil \\frac{n}{2}\\rceil+1"
    ));
    assert!(eq(
        "\\lfloor x \\rfloor + \\lfloor x \\rfloor",
        "2\\lfloor x \\rfloor"
    ));
    assert!(eq("\\max(x, 2)", "\\max(2, x)"));
    assert!(!eq("\\max(x, 2)", "\\min(2, x)"));
}

#[test]
fn integers_compare_exactly() {
    assert!(!eq("198719871989", "198719871987"));
    assert!(eq("198719871987", "198719871987.0"));
    // The relative tolerance is for decimals against exact values.
    assert!(eq("0.0833333333333333", "\\frac{1}{12}"));
}

#[test]
fn reversed_bracket_pair_is_not_an_empty_interval() {
    assert!(!check("$\\boxed{(3,2]}$", "(3,2)"));
    assert!(!check("$\\boxed{[3,2)}$", "(3,2)"));
    assert!(check("$\\boxed{(3,2)}$", "(3,2)"));
}

#[test]
fn tuples_are_not_thousands() {
    assert!(check(
        "$\\boxed{\\left( 2 ,\\ 251 ,\\ 252 \\right)}$",
        "(2,251,252)"
    ));
    assert!(!check("$\\boxed{2251252}$", "(2,251,252)"));
    assert!(eq("1,000,000", "1000000"));
}

#[test]
fn named_answers_of_other_kinds() {
    assert!(check("$\\boxed{x = 40_9}$", "40_9"));
    assert!(!check("$\\boxed{x = 41_9}$", "40_9"));
    assert!(check("$\\boxed{n=\\text{Navin}}$", "\\text{Navin}"));
    assert!(check("$\\boxed{20\\text{ percent}}$", "20\\%"));
    assert!(check("$\\boxed{\\textstyle 52_8}$", "52_8"));
}

#[test]
fn nested_operators_stay_within_the_work_limit() {
    let deep = format!("{}x dx", "\\int ".repeat(370));
    let start = std::time::Instant::now();
    let (v, work) = Checker::new(CheckerOptions::default()).check_with_work(&deep, "1");
    assert!(!v.correct);
    assert!(work <= crate::DEFAULT_WORK_LIMIT);
    assert!(start.elapsed().as_secs_f64() < 2.0, "{:?}", start.elapsed());
    let sums = format!("{}k", "\\sum_{k=1}^{n} ".repeat(120));
    assert!(!check(&sums, "1"));
}
