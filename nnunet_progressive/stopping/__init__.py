"""Stop at a target Dice: Dice bookkeeping (:mod:`.dice`) and the time-to-Dice report (:mod:`.time_to_dice`)."""
