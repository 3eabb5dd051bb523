package main

import (
	"flag"
	"strings"
)

// The list, get, delete, disable and enable subcommands are the same for
// every resource; these build them from the resource's API calls and
// table layout.

// listCmd lists a resource, optionally filtered by one flag (e.g. --tenant).
func listCmd[T any](help, filter, filterHelp string, list func(c *cli, filter string) ([]T, error), header string, rows func(...T) [][]string) subCommand {
	usage := ""
	if filter != "" {
		usage = "[--" + filter + " " + strings.ToUpper(filterArg(filter)) + "]"
	}
	return subCommand{usage: usage, help: help, flags: func(fs *flag.FlagSet) func(*cli, []string) error {
		var f *string
		if filter != "" {
			f = fs.String(filter, "", filterHelp)
		}
		return func(c *cli, args []string) error {
			if err := nArgs(args, 0, "no arguments"); err != nil {
				return err
			}
			v := ""
			if f != nil {
				v = *f
			}
			items, err := list(c, v)
			if err != nil {
				return err
			}
			return c.table(items, header, rows(items...))
		}
	}}
}

func filterArg(flag string) string {
	if flag == "tenant" {
		return "slug"
	}
	return "id"
}

// getCmd shows one record.
func getCmd[T any](arg, help string, get func(c *cli, id string) (*T, error), header string, rows func(...T) [][]string) subCommand {
	return subCommand{usage: arg, help: help, flags: func(fs *flag.FlagSet) func(*cli, []string) error {
		return func(c *cli, args []string) error {
			if err := nArgs(args, 1, arg); err != nil {
				return err
			}
			v, err := get(c, args[0])
			if err != nil {
				return err
			}
			return c.table(v, header, rows(*v))
		}
	}}
}

// deleteCmd deletes one record.
func deleteCmd(kind, arg, help string, del func(c *cli, id string) (uint64, error)) subCommand {
	return subCommand{usage: arg, help: help, flags: func(fs *flag.FlagSet) func(*cli, []string) error {
		return func(c *cli, args []string) error {
			if err := nArgs(args, 1, arg); err != nil {
				return err
			}
			rev, err := del(c, args[0])
			if err != nil {
				return err
			}
			return c.deleted(kind, args[0], rev)
		}
	}}
}

// toggleCmd sets or clears a record's disabled flag (GET, edit, PUT).
func toggleCmd(arg, help string, disabled bool, set func(c *cli, id string, disabled bool) error) subCommand {
	return subCommand{usage: arg, help: help, flags: func(fs *flag.FlagSet) func(*cli, []string) error {
		return func(c *cli, args []string) error {
			if err := nArgs(args, 1, arg); err != nil {
				return err
			}
			return set(c, args[0], disabled)
		}
	}}
}
