//! The mutation root: creating and changing printers, and the print actions.

use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, Result};

use super::context::{request, writer};
use super::query::row_id;
use super::types::{
    ActionOnFailure, AlertOverwrite, Printer, PrinterActionResult, PrinterCredentials,
};
use crate::error::AppError;
use crate::service::{NewPrinter, PrinterAction, PrinterPatch};

/// The writable fields of a printer other than its name; all optional.
#[derive(InputObject, Default)]
pub struct PrinterOptions {
    /// PAUSE or NONE.
    pub action_on_failure: MaybeUndefined<ActionOnFailure>,
    /// Whether failure detection watches the printer (default true).
    pub watching_enabled: MaybeUndefined<bool>,
    /// Turn the tool heaters off when paused for a failure (default true).
    pub tools_off_on_pause: MaybeUndefined<bool>,
    /// Turn the bed heater off when paused for a failure (default false).
    pub bed_off_on_pause: MaybeUndefined<bool>,
    /// 0 to 100 (mm).
    pub retract_on_pause: MaybeUndefined<f64>,
    /// 0 to 100 (mm).
    pub lift_z_on_pause: MaybeUndefined<f64>,
    /// 0.8 to 1.2.
    pub detective_sensitivity: MaybeUndefined<f64>,
    /// -1 (no timelapse) or seconds >= 0.
    pub min_timelapse_secs_on_finish: MaybeUndefined<i32>,
    /// -1 (no timelapse) or seconds >= 0.
    pub min_timelapse_secs_on_cancel: MaybeUndefined<i32>,
}

/// A new printer.
#[derive(InputObject)]
pub struct CreatePrinterInput {
    /// 1 to 256 characters, trimmed.
    pub name: String,
    #[graphql(flatten)]
    pub options: PrinterOptions,
}

/// Changes to a printer: only the given fields are written.
#[derive(InputObject)]
pub struct UpdatePrinterInput {
    /// 1 to 256 characters, trimmed.
    pub name: MaybeUndefined<String>,
    #[graphql(flatten)]
    pub options: PrinterOptions,
}

/// A given value; an explicit null is noted in `nulls` (these fields have no null), to be refused with every other invalid field.
fn given<T>(nulls: &mut Vec<&'static str>, field: &'static str, v: MaybeUndefined<T>) -> Option<T> {
    match v {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => {
            nulls.push(field);
            None
        }
        MaybeUndefined::Value(v) => Some(v),
    }
}

impl PrinterOptions {
    fn into_patch(self, name: Option<String>, mut nulls: Vec<&'static str>) -> PrinterPatch {
        let n = &mut nulls;
        let patch = PrinterPatch {
            name,
            action_on_failure: given(n, "action_on_failure", self.action_on_failure)
                .map(Into::into),
            watching_enabled: given(n, "watching_enabled", self.watching_enabled),
            tools_off_on_pause: given(n, "tools_off_on_pause", self.tools_off_on_pause),
            bed_off_on_pause: given(n, "bed_off_on_pause", self.bed_off_on_pause),
            retract_on_pause: given(n, "retract_on_pause", self.retract_on_pause),
            lift_z_on_pause: given(n, "lift_z_on_pause", self.lift_z_on_pause),
            detective_sensitivity: given(n, "detective_sensitivity", self.detective_sensitivity),
            min_timelapse_secs_on_finish: given(
                n,
                "min_timelapse_secs_on_finish",
                self.min_timelapse_secs_on_finish,
            ),
            min_timelapse_secs_on_cancel: given(
                n,
                "min_timelapse_secs_on_cancel",
                self.min_timelapse_secs_on_cancel,
            ),
            nulls: Vec::new(),
        };
        PrinterPatch { nulls, ..patch }
    }
}

/// The row id an `ID` argument names; a malformed one names nothing.
fn existing(id: &ID) -> Result<i32, AppError> {
    row_id(id).ok_or(AppError::NotFound)
}

/// The printer mutations.
#[derive(Default)]
pub struct PrinterMutation;

impl PrinterMutation {
    async fn act(ctx: &Context<'_>, id: &ID, action: PrinterAction) -> Result<PrinterActionResult> {
        let viewer = writer(ctx).await?;
        let id = existing(id)?;
        let outcome = request(ctx)?.service().act(viewer, id, action).await?;
        Ok(PrinterActionResult(outcome))
    }
}

/// The printer mutations.
#[Object]
impl PrinterMutation {
    /// Adds a printer; the result carries its new `authToken` for the agent.
    async fn create_printer(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new printer.")] input: CreatePrinterInput,
    ) -> Result<Printer> {
        let viewer = writer(ctx).await?;
        let patch = input.options.into_patch(None, Vec::new());
        let new = NewPrinter {
            name: input.name,
            patch,
        };
        let created = request(ctx)?.service().create_printer(viewer, new).await?;
        // The new printer's token is shown here, once.
        request(ctx)?.reveal(created.id);
        Ok(Printer(created))
    }

    /// Gives a printer a new agent token: the old one stops working at once (its live connection is closed) and the new one is in the result.
    async fn regenerate_printer_token(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The printer's id.")] id: ID,
    ) -> Result<PrinterCredentials> {
        let viewer = writer(ctx).await?;
        let row = request(ctx)?
            .service()
            .regenerate_printer_token(viewer, existing(&id)?)
            .await?;
        Ok(PrinterCredentials(row))
    }

    /// Changes the given fields of a printer and leaves the rest alone.
    async fn update_printer(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The printer's id.")] id: ID,
        #[graphql(desc = "The fields to change.")] input: UpdatePrinterInput,
    ) -> Result<Printer> {
        let viewer = writer(ctx).await?;
        let id = existing(&id)?;
        let mut nulls = Vec::new();
        let name = given(&mut nulls, "name", input.name);
        let patch = input.options.into_patch(name, nulls);
        Ok(Printer(
            request(ctx)?
                .service()
                .update_printer(viewer, id, patch)
                .await?,
        ))
    }

    /// Deletes a printer (its print history is kept); returns its id.
    async fn delete_printer(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The printer's id.")] id: ID,
    ) -> Result<ID> {
        let viewer = writer(ctx).await?;
        let row = existing(&id)?;
        request(ctx)?.service().delete_printer(viewer, row).await?;
        Ok(id)
    }

    /// Hides a printer from the default list.
    async fn archive_printer(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The printer's id.")] id: ID,
    ) -> Result<Printer> {
        let viewer = writer(ctx).await?;
        let id = existing(&id)?;
        Ok(Printer(
            request(ctx)?
                .service()
                .set_archived(viewer, id, true)
                .await?,
        ))
    }

    /// Brings an archived printer back.
    async fn unarchive_printer(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The printer's id.")] id: ID,
    ) -> Result<Printer> {
        let viewer = writer(ctx).await?;
        let id = existing(&id)?;
        Ok(Printer(
            request(ctx)?
                .service()
                .set_archived(viewer, id, false)
                .await?,
        ))
    }

    /// Sends `cancel` to the agent; acknowledges a raised alert as FAILED.
    async fn cancel_print(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The printer's id.")] id: ID,
    ) -> Result<PrinterActionResult> {
        Self::act(ctx, &id, PrinterAction::Cancel).await
    }

    /// Sends `pause` (with the printer's pause settings) to the agent.
    async fn pause_print(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The printer's id.")] id: ID,
    ) -> Result<PrinterActionResult> {
        Self::act(ctx, &id, PrinterAction::Pause).await
    }

    /// Sends `resume` to the agent; acknowledges a raised alert as NOT_FAILED.
    async fn resume_print(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The printer's id.")] id: ID,
    ) -> Result<PrinterActionResult> {
        Self::act(ctx, &id, PrinterAction::Resume).await
    }

    /// Mutes (or, with `mute: false`, unmutes) alerts for the current print.
    async fn mute_current_print(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The printer's id.")] id: ID,
        #[graphql(default = true, desc = "True to mute, false to unmute.")] mute: bool,
    ) -> Result<PrinterActionResult> {
        Self::act(ctx, &id, PrinterAction::Mute(mute)).await
    }

    /// Acknowledges the current print's alert, optionally with a verdict.
    async fn acknowledge_alert(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The printer's id.")] id: ID,
        #[graphql(desc = "The verdict on the alert (none: just acknowledged).")]
        alert_overwrite: Option<AlertOverwrite>,
    ) -> Result<PrinterActionResult> {
        Self::act(
            ctx,
            &id,
            PrinterAction::AcknowledgeAlert(alert_overwrite.map(Into::into)),
        )
        .await
    }
}
