//! Which layers an adapter wraps, and with which rank and `α`: PEFT's
//! rules, in PEFT's order (spec `peft.md` §1.4). Names are layer paths
//! relative to the model root (`encoder.layer.0.attention.self.query`).

use crate::config::{LoraConfig, Targets};
use crate::layer::LayerKind;
use crate::{Error, Result};
use regex::Regex;

/// What the rules decide for one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// An adapter wraps it.
    Target,
    /// It is trained whole, one copy per adapter (`modules_to_save`).
    Saved,
    /// Left alone.
    Skip,
}

/// A regular expression that must match all of `text` (Python's `fullmatch`).
fn full_match(pattern: &str, text: &str, key: &str) -> Result<bool> {
    let re = Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| Error::config("<config>", key, format!("bad regular expression: {e}")))?;
    Ok(re.is_match(text))
}

/// `name` equals an entry or ends with `.` + an entry.
fn suffix_match(list: &[String], name: &str) -> bool {
    list.iter()
        .any(|t| name == t || name.ends_with(&format!(".{t}")))
}

/// Some path segment equals `module` (PEFT's `(^|.*\.)m($|\..*)`).
fn has_segment(name: &str, module: &str) -> bool {
    name.split('.').any(|s| s == module)
        || name == module
        || name.starts_with(&format!("{module}."))
        || name.ends_with(&format!(".{module}"))
        || name.contains(&format!(".{module}."))
}

/// The output heads `all-linear` leaves out.
fn is_output_head(config: &LoraConfig, name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name);
    last == "lm_head"
        || (config.task_type.as_deref() == Some("SEQ_CLS")
            && (last == "classifier" || last == "score"))
}

/// The block index of `name` for `layers_to_transform`: the integer
/// segment after a `layers_pattern` segment (any segment without one).
pub fn layer_index(config: &LoraConfig, name: &str) -> Result<Option<i64>> {
    let patterns = match &config.layers_pattern {
        Some(p) => p.to_vec(),
        None => vec!["[^.]*".to_string()],
    };
    for p in patterns {
        let re = Regex::new(&format!(r"^.*?\.{p}\.(\d+)\.")).map_err(|e| {
            Error::config("<config>", "layers_pattern", format!("bad pattern: {e}"))
        })?;
        if let Some(c) = re.captures(name) {
            return Ok(c[1].parse().ok());
        }
    }
    Ok(None)
}

/// What the rules of `config` decide for the layer `name` of kind `kind`.
pub fn select(config: &LoraConfig, name: &str, kind: LayerKind) -> Result<Selection> {
    // 1. exclude_modules.
    match &config.exclude_modules {
        Some(Targets::Pattern(p)) if full_match(p, name, "exclude_modules")? => {
            return Ok(Selection::Skip);
        }
        Some(Targets::List(l)) if suffix_match(l, name) => return Ok(Selection::Skip),
        _ => {}
    }
    // 2. modules_to_save: never a LoRA target.
    if let Some(saved) = &config.modules_to_save {
        if saved.iter().any(|m| has_segment(name, m)) {
            // The module itself is saved; layers inside it are left alone.
            return Ok(
                if saved
                    .iter()
                    .any(|m| name == m || name.ends_with(&format!(".{m}")))
                {
                    Selection::Saved
                } else {
                    Selection::Skip
                },
            );
        }
    }
    // 3./4. target_modules.
    let hit = match &config.target_modules {
        None => false,
        Some(Targets::Pattern(p)) if p.eq_ignore_ascii_case("all-linear") => {
            matches!(kind, LayerKind::Linear | LayerKind::Conv1D) && !is_output_head(config, name)
        }
        Some(Targets::Pattern(p)) => full_match(p, name, "target_modules")?,
        Some(Targets::List(l)) => {
            let mut hit = suffix_match(l, name);
            // 5. layers_to_transform (list targets only).
            if hit {
                if let Some(wanted) = &config.layers_to_transform {
                    hit = layer_index(config, name)?.is_some_and(|i| wanted.to_vec().contains(&i));
                }
            }
            hit
        }
    };
    Ok(if hit {
        Selection::Target
    } else {
        Selection::Skip
    })
}

/// The first `(pattern, value)` whose pattern matches the end of `name` at
/// a `.` boundary (`(.*\.)?(pattern)$`), in the given order.
fn first_pattern<V: Copy>(pairs: &[(String, V)], name: &str, key: &str) -> Result<Option<V>> {
    for (p, v) in pairs {
        let re = Regex::new(&format!(r"^(?:.*\.)?(?:{p})$"))
            .map_err(|e| Error::config("<config>", &format!("{key}.{p}"), e.to_string()))?;
        if re.is_match(name) {
            return Ok(Some(*v));
        }
    }
    Ok(None)
}

/// The rank and `α` of layer `name`: from `rank_pattern` / `alpha_pattern`,
/// else `r` / `lora_alpha`.
pub fn rank_and_alpha(config: &LoraConfig, name: &str) -> Result<(i64, f64)> {
    Ok((
        first_pattern(&config.rank_pattern, name, "rank_pattern")?.unwrap_or(config.r),
        first_pattern(&config.alpha_pattern, name, "alpha_pattern")?.unwrap_or(config.lora_alpha),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OneOrMany;

    fn cfg(targets: Targets) -> LoraConfig {
        LoraConfig {
            target_modules: Some(targets),
            ..LoraConfig::default()
        }
    }

    #[test]
    fn the_matching_table() {
        use LayerKind::*;
        use Selection::*;
        let list = |l: &[&str]| Targets::names(l);
        let pat = |p: &str| Targets::Pattern(p.into());
        let with = |mut c: LoraConfig, f: &dyn Fn(&mut LoraConfig)| {
            f(&mut c);
            c
        };
        let cases: Vec<(LoraConfig, &str, LayerKind, Selection)> = vec![
            // List: exact name or `.`-boundary suffix.
            (
                cfg(list(&["query"])),
                "encoder.layer.0.attention.self.query",
                Linear,
                Target,
            ),
            (cfg(list(&["query"])), "query", Linear, Target),
            (
                cfg(list(&["query"])),
                "encoder.layer.0.attention.self.myquery",
                Linear,
                Skip,
            ),
            (
                cfg(list(&["self.query"])),
                "encoder.layer.0.attention.self.query",
                Linear,
                Target,
            ),
            (cfg(list(&["conv"])), "gconv", Conv2d, Skip),
            // A string is a full-match regular expression.
            (cfg(pat(r".*\.query")), "a.query", Linear, Target),
            (cfg(pat("query")), "a.query", Linear, Skip),
            (cfg(pat(r"blocks\.[01]\.fc")), "blocks.1.fc", Linear, Target),
            // all-linear: Linear and Conv1D but not the output head.
            (cfg(pat("all-linear")), "h.0.attn.c_attn", Conv1D, Target),
            (cfg(pat("ALL-LINEAR")), "fc", Linear, Target),
            (cfg(pat("all-linear")), "emb", Embedding, Skip),
            (cfg(pat("all-linear")), "lm_head", Linear, Skip),
            (cfg(pat("all-linear")), "classifier", Linear, Target),
            (
                with(cfg(pat("all-linear")), &|c| {
                    c.task_type = Some("SEQ_CLS".into())
                }),
                "classifier",
                Linear,
                Skip,
            ),
            // exclude_modules: list suffix or full-match regex, before targets.
            (
                with(cfg(list(&["fc"])), &|c| {
                    c.exclude_modules = Some(list(&["blocks.1.fc"]))
                }),
                "blocks.1.fc",
                Linear,
                Skip,
            ),
            (
                with(cfg(list(&["fc"])), &|c| {
                    c.exclude_modules = Some(pat(r"blocks\.1\..*"))
                }),
                "blocks.0.fc",
                Linear,
                Target,
            ),
            // modules_to_save wins over targets; layers inside it are left alone.
            (
                with(cfg(list(&["head", "fc"])), &|c| {
                    c.modules_to_save = Some(vec!["head".into()])
                }),
                "head",
                Linear,
                Saved,
            ),
            (
                with(cfg(list(&["fc"])), &|c| {
                    c.modules_to_save = Some(vec!["head".into()])
                }),
                "head.fc",
                Linear,
                Skip,
            ),
            // layers_to_transform with and without layers_pattern.
            (
                with(cfg(list(&["q"])), &|c| {
                    c.layers_to_transform = Some(OneOrMany::One(1))
                }),
                "model.layers.1.attn.q",
                Linear,
                Target,
            ),
            (
                with(cfg(list(&["q"])), &|c| {
                    c.layers_to_transform = Some(OneOrMany::Many(vec![0, 2]))
                }),
                "model.layers.1.attn.q",
                Linear,
                Skip,
            ),
            (
                with(cfg(list(&["q"])), &|c| {
                    c.layers_to_transform = Some(OneOrMany::One(3));
                    c.layers_pattern = Some(OneOrMany::One("h".into()));
                }),
                "transformer.h.3.attn.q",
                Linear,
                Target,
            ),
            // No index found: no match.
            (
                with(cfg(list(&["fc"])), &|c| {
                    c.layers_to_transform = Some(OneOrMany::One(0))
                }),
                "blocks.0.fc",
                Linear,
                Skip,
            ),
        ];
        for (i, (c, name, kind, want)) in cases.iter().enumerate() {
            assert_eq!(select(c, name, *kind).unwrap(), *want, "case {i}: {name}");
        }
    }

    #[test]
    fn the_scaling_table() {
        let mut c = LoraConfig::new(4, 8.0, &["fc"]);
        c.rank_pattern = vec![("blocks.1.fc".into(), 2), ("fc".into(), 3)];
        c.alpha_pattern = vec![("conv".into(), 16.0)];
        let got = |c: &LoraConfig, n: &str| {
            let (r, a) = rank_and_alpha(c, n).unwrap();
            (r, a, c.scaling(r, a))
        };
        // The first pattern in file order wins; matches end at a `.` boundary.
        assert_eq!(got(&c, "blocks.1.fc"), (2, 8.0, 4.0));
        assert_eq!(got(&c, "blocks.0.fc"), (3, 8.0, 8.0 / 3.0));
        assert_eq!(got(&c, "conv"), (4, 16.0, 4.0));
        assert_eq!(got(&c, "gconv"), (4, 8.0, 2.0));
        assert_eq!(got(&c, "proj"), (4, 8.0, 2.0));
        c.use_rslora = true;
        assert_eq!(got(&c, "proj"), (4, 8.0, 4.0));
        assert_eq!(got(&c, "blocks.1.fc").2, 8.0 / 2f64.sqrt());
    }
}
