"""The CNN learning problem (Haber, Ruthotto & Holtham) as a pdecontrol control problem."""
