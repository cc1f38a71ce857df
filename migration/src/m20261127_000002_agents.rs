//! What agents bring: the latest snapshot per printer, G-code files and
//! printer events reported over HTTP.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Checked first: an older printgate ran this without a transaction,
        // and one killed right after the ALTER left the column behind.
        if !manager.has_column("printers", "pic_at").await? {
            manager
                .alter_table(
                    Table::alter()
                        .table(Printers::Table)
                        .add_column(timestamp_with_time_zone_null(Printers::PicAt))
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(Snapshots::Table)
                    .if_not_exists()
                    .col(integer(Snapshots::PrinterId).primary_key())
                    .col(text(Snapshots::ContentType))
                    .col(blob(Snapshots::Data))
                    .col(timestamp_with_time_zone(Snapshots::TakenAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_snapshots_printer_id")
                            .from(Snapshots::Table, Snapshots::PrinterId)
                            .to(Printers::Table, Printers::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(GCodeFiles::Table)
                    .if_not_exists()
                    .col(pk_auto(GCodeFiles::Id))
                    .col(integer(GCodeFiles::PrinterId))
                    .col(text(GCodeFiles::Filename))
                    .col(text(GCodeFiles::SafeFilename))
                    .col(big_integer_null(GCodeFiles::NumBytes))
                    .col(text(GCodeFiles::AgentSignature))
                    .col(text_null(GCodeFiles::Url))
                    .col(timestamp_with_time_zone(GCodeFiles::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_g_code_files_printer_id")
                            .from(GCodeFiles::Table, GCodeFiles::PrinterId)
                            .to(Printers::Table, Printers::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_g_code_files_printer_file")
                    .table(GCodeFiles::Table)
                    .col(GCodeFiles::PrinterId)
                    .col(GCodeFiles::SafeFilename)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PrinterEvents::Table)
                    .if_not_exists()
                    .col(pk_auto(PrinterEvents::Id))
                    .col(integer(PrinterEvents::PrinterId))
                    .col(text(PrinterEvents::EventType))
                    .col(text_null(PrinterEvents::EventClass))
                    .col(text_null(PrinterEvents::EventTitle))
                    .col(text_null(PrinterEvents::EventText))
                    .col(text_null(PrinterEvents::InfoUrl))
                    .col(timestamp_with_time_zone(PrinterEvents::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_printer_events_printer_id")
                            .from(PrinterEvents::Table, PrinterEvents::PrinterId)
                            .to(Printers::Table, Printers::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            PrinterEvents::Table.into_iden(),
            GCodeFiles::Table.into_iden(),
            Snapshots::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(t).to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Printers::Table)
                    .drop_column(Printers::PicAt)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Printers {
    Table,
    Id,
    PicAt,
}

#[derive(DeriveIden)]
enum Snapshots {
    Table,
    PrinterId,
    ContentType,
    Data,
    TakenAt,
}

#[derive(DeriveIden)]
enum GCodeFiles {
    Table,
    Id,
    PrinterId,
    Filename,
    SafeFilename,
    NumBytes,
    AgentSignature,
    Url,
    CreatedAt,
}

#[derive(DeriveIden)]
enum PrinterEvents {
    Table,
    Id,
    PrinterId,
    EventType,
    EventClass,
    EventTitle,
    EventText,
    InfoUrl,
    CreatedAt,
}
