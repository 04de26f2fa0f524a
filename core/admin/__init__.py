"""The dashboard's admin: the password that guards price edits and the test call."""
