//! What the flow tables can do, as OFPMP_TABLE_FEATURES reports it: eight tables, each
//! matching every OXM field the codec and datapath support (maskable ones wildcardable),
//! apply-actions (output, set-field ETH_SRC/ETH_DST/VLAN_VID, push/pop VLAN),
//! write-metadata and goto-table to any later table.
use lime_common::limits::{MAX_RULES, MAX_TABLES};
use lime_openflow::{
    DATAPATH_SETTABLE, OxmHeader,
    consts::{ActionType, InstructionType, OxmFieldId},
    multipart::table_features::{TableFeatureProp, TableFeatures},
};

/// The table-features records of all tables.
#[must_use]
pub fn table_features() -> Vec<TableFeatures> {
    let instructions: Vec<u16> = [
        InstructionType::ApplyActions,
        InstructionType::WriteMetadata,
        InstructionType::GotoTable,
    ]
    .iter()
    .map(|i| i.to_raw())
    .collect();
    let actions: Vec<u16> = [
        ActionType::Output,
        ActionType::SetField,
        ActionType::PushVlan,
        ActionType::PopVlan,
    ]
    .iter()
    .map(|a| a.to_raw())
    .collect();
    let fields: Vec<OxmFieldId> = OxmFieldId::ALL
        .iter()
        .copied()
        .filter(|f| f.is_supported())
        .collect();
    let matchable: Vec<OxmHeader> = fields
        .iter()
        .map(|f| OxmHeader::basic(*f, f.is_maskable()))
        .collect();
    let wildcards: Vec<OxmHeader> = fields.iter().map(|f| OxmHeader::basic(*f, false)).collect();
    let settable: Vec<OxmHeader> = DATAPATH_SETTABLE
        .iter()
        .map(|f| OxmHeader::basic(*f, false))
        .collect();
    (0..MAX_TABLES)
        .map(|t| {
            let table_id = u8::try_from(t).unwrap_or(u8::MAX);
            let next: Vec<u8> =
                (table_id + 1..u8::try_from(MAX_TABLES).unwrap_or(u8::MAX)).collect();
            let mut properties = Vec::new();
            for miss in [false, true] {
                properties.push(TableFeatureProp::Instructions {
                    miss,
                    ids: instructions.clone(),
                });
                properties.push(TableFeatureProp::NextTables {
                    miss,
                    tables: next.clone(),
                });
                properties.push(TableFeatureProp::ApplyActions {
                    miss,
                    ids: actions.clone(),
                });
                properties.push(TableFeatureProp::ApplySetfield {
                    miss,
                    fields: settable.clone(),
                });
            }
            properties.push(TableFeatureProp::Match(matchable.clone()));
            properties.push(TableFeatureProp::Wildcards(wildcards.clone()));
            TableFeatures {
                table_id,
                name: format!("table{table_id}"),
                metadata_match: u64::MAX,
                metadata_write: u64::MAX,
                config: 0,
                max_entries: MAX_RULES,
                properties,
            }
        })
        .collect()
}
