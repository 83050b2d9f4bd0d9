//! What a program object holds, read before it is handed to the runtime:
//! its map definitions (section `maps`), its code sections and their size,
//! and the external names it uses. The loader refuses, with a message that
//! names the problem, what the runtime would refuse with a bare errno.

#![forbid(unsafe_code)]

use super::maps::{MapDef, MapKind};
use object::{Object, ObjectSection, ObjectSymbol, SymbolSection};

/// Largest program (instructions) the service loads.
pub const MAX_INSNS: usize = 4096;
/// Maps one program may declare.
pub const MAX_MAPS: usize = 16;

/// The parts of an object the loader checks.
#[derive(Debug, Default)]
pub struct ObjectInfo {
    /// Map definitions, in symbol order.
    pub maps: Vec<(String, MapDef)>,
    /// Executable sections and their length in instructions.
    pub sections: Vec<(String, usize)>,
    /// Names the code uses but does not define (helpers, `flextoe_md`).
    pub externs: Vec<String>,
}

/// Reads `bytes` as a BPF ELF object.
pub fn inspect(bytes: &[u8]) -> Result<ObjectInfo, String> {
    let file = object::File::parse(bytes).map_err(|e| format!("not an ELF object: {e}"))?;
    if file.architecture() != object::Architecture::Bpf {
        return Err(format!(
            "an object for {:?}, not BPF (compile with `clang -target bpf -O2 -c`)",
            file.architecture()
        ));
    }
    if file.kind() != object::ObjectKind::Relocatable {
        return Err("not a relocatable object (compile with -c, do not link)".into());
    }
    let mut info = ObjectInfo::default();
    for s in file.sections() {
        if s.kind() == object::SectionKind::Text && s.size() > 0 {
            let name = s.name().unwrap_or("?").to_owned();
            info.sections.push((name, (s.size() / 8) as usize));
        }
    }
    let maps_section = file.section_by_name("maps");
    for sym in file.symbols() {
        let name = sym.name().unwrap_or("").to_owned();
        match sym.section() {
            SymbolSection::Undefined if !name.is_empty() && !info.externs.contains(&name) => {
                info.externs.push(name);
            }
            SymbolSection::Section(index) => {
                let Some(maps) = &maps_section else { continue };
                if index != maps.index() || sym.kind() == object::SymbolKind::Section {
                    continue;
                }
                let data = maps
                    .data()
                    .map_err(|e| format!("cannot read section maps: {e}"))?;
                let at = usize::try_from(sym.address()).unwrap_or(usize::MAX);
                let raw = at
                    .checked_add(16)
                    .and_then(|end| data.get(at..end))
                    .ok_or_else(|| format!("map {name}: definition shorter than 16 bytes"))?;
                let word = |i: usize| u32::from_le_bytes(raw[i * 4..i * 4 + 4].try_into().unwrap());
                let kind = MapKind::from_code(word(0)).ok_or_else(|| {
                    format!(
                        "map {name}: kind {} (allowed FLEXTOE_MAP_ARRAY 1, FLEXTOE_MAP_HASH 2, \
                         FLEXTOE_MAP_PER_REPLICA 3)",
                        word(0)
                    )
                })?;
                info.maps.push((
                    name,
                    MapDef {
                        kind,
                        key_size: word(1),
                        value_size: word(2),
                        max_entries: word(3),
                    },
                ));
            }
            _ => {}
        }
    }
    if info.maps.len() > MAX_MAPS {
        return Err(format!(
            "{} maps (at most {MAX_MAPS} per program)",
            info.maps.len()
        ));
    }
    Ok(info)
}

/// The external names a program with `maps` may use.
pub fn provided_names(maps: &[(String, MapDef)]) -> Vec<String> {
    let mut names = vec![
        "flextoe_md".to_owned(),
        "flextoe_adjust_head".to_owned(),
        "flextoe_capture".to_owned(),
    ];
    for (m, _) in maps {
        for op in ["lookup", "update", "delete", "add"] {
            names.push(format!("{m}_{op}"));
        }
    }
    names
}

impl ObjectInfo {
    /// Checks the section, its size and the names it uses.
    pub fn check(&self, section: &str) -> Result<(), String> {
        let Some((_, insns)) = self.sections.iter().find(|(n, _)| n == section) else {
            let names: Vec<&str> = self.sections.iter().map(|(n, _)| n.as_str()).collect();
            return Err(format!(
                "no code section {section:?} (the object has: {})",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            ));
        };
        if section != ".text" && self.sections.iter().any(|(n, _)| n == ".text") {
            return Err(
                "the object has code in .text: a function clang did not inline, which the \
                 program would call; the runtime runs one function per program, so declare \
                 helpers FLEXTOE_INLINE (flextoe_xdp.h)"
                    .into(),
            );
        }
        if *insns > MAX_INSNS {
            return Err(format!(
                "section {section} has {insns} instructions (at most {MAX_INSNS})"
            ));
        }
        let provided = provided_names(&self.maps);
        for name in &self.externs {
            if !provided.contains(name) {
                return Err(format!(
                    "unknown function or variable {name:?}: the service provides \
                     flextoe_md, flextoe_adjust_head, flextoe_capture and, for each \
                     declared map M, \
                     M_lookup, M_update, M_delete and M_add (flextoe_xdp.h)"
                ));
            }
        }
        Ok(())
    }
}
