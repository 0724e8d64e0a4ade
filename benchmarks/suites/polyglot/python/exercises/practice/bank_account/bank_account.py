class Account:
    def open(self):
        pass

    def close(self):
        pass

    def deposit(self, amount):
        pass

    def withdraw(self, amount):
        pass

    def balance(self):
        pass
